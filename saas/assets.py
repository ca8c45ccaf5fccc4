"""Front-end libraries declared in frontend/package.json, served from node_modules."""

from pathlib import Path

from flask import Flask, abort, send_from_directory

from saas.config import ROOT

NODE_MODULES = ROOT / "frontend" / "node_modules"

# The one file the portal loads from each npm package.
VENDOR_FILES = {
    "htmx": "htmx.org/dist/htmx.min.js",
    "chart": "chart.js/dist/chart.umd.min.js",
    "jsqr": "jsqr/dist/jsQR.js",  # QR codes from the desk's camera where the browser has no BarcodeDetector (iPad)
}


def vendor(path: str):
    if path not in VENDOR_FILES.values() or not (NODE_MODULES / path).is_file():
        abort(404)
    return send_from_directory(NODE_MODULES, path, max_age=86400)


def vendor_path(name: str) -> str:
    return VENDOR_FILES[name]


def init_app(app: Flask) -> None:
    app.add_url_rule("/vendor/<path:path>", endpoint="vendor", view_func=vendor)
    app.jinja_env.globals["vendor_path"] = vendor_path
    app.jinja_env.globals["vendor_installed"] = lambda name: Path(NODE_MODULES / VENDOR_FILES[name]).is_file()
