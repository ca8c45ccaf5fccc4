"""Plans and message quota: LINE's plans as data, each clinic's plan and its monthly count."""
