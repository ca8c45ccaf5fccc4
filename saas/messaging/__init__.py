"""Messages: LINE message objects, their validation, templates with variables and the composer."""
