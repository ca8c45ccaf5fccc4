"""Error pages in Japanese (English with ?lang=en), JSON for API clients."""

from flask import Flask, render_template, request
from flask_babel import gettext as _
from sqlalchemy.exc import DataError
from werkzeug.exceptions import HTTPException, NotFound

from saas.common import ID_MAX


def _messages() -> dict[int, tuple[str, str]]:
    return {
        400: (_("リクエストが正しくありません"), _("入力内容をご確認のうえ、もう一度お試しください。")),
        401: (_("認証が必要です"), _("ログインしてからもう一度お試しください。")),
        403: (_("この操作を行う権限がありません"), _("必要な場合はクリニックの管理者に権限の付与を依頼してください。")),
        404: (_("ページが見つかりません"), _("URLが正しいか、アクセス権があるかをご確認ください。")),
        405: (_("この操作はできません"), _("ページを再読み込みしてからもう一度お試しください。")),
        413: (_("データが大きすぎます"), _("送信するデータのサイズを小さくしてください。")),
        429: (_("リクエストが多すぎます"), _("しばらく待ってからもう一度お試しください。")),
        500: (
            _("システムエラーが発生しました"),
            _("時間をおいて再度お試しください。解決しない場合はサポートまでご連絡ください。"),
        ),
    }


def _wants_json() -> bool:
    return request.path.startswith(("/api/", "/webhooks/")) or request.accept_mimetypes.best == "application/json"


def render_error(error: HTTPException):
    code = error.code or 500
    title, hint = _messages().get(code, (error.name, error.description or ""))
    if request.path.startswith("/api/"):  # the REST API answers RFC 9457 problem details
        from saas.api.problems import problem_response

        return problem_response(code, error.description or error.name)
    if _wants_json():
        return {"error": {"status": code, "message": title, "detail": error.description}}, code
    return render_template("errors/error.html", code=code, title=title, hint=hint), code


def id_out_of_range(error: DataError):
    """An id in the URL beyond a 32-bit key that Postgres refused to compare (22003): no such row, 404.

    The URL converter admits 64-bit ids (``BigId`` tables); any other out-of-range error stays a 500.
    """
    from saas.extensions import db

    too_large = any(isinstance(v, int) and v > ID_MAX for v in (request.view_args or {}).values())
    if getattr(error.orig, "sqlstate", None) != "22003" or not too_large:
        raise error
    db.session.rollback()
    return render_error(NotFound())


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, render_error)
    app.register_error_handler(DataError, id_out_of_range)
