"""gunicorn settings for the Procfile's web process: an access log with secrets taken out of URLs."""

from saas.security.redaction import gunicorn_logger_class

accesslog = "-"
logger_class = gunicorn_logger_class()
