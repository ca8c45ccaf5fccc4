"""Audit events in the clinic's words: action labels (the code stays in a tooltip), targets, details.

Actions not listed here are named from their first part (``booking.*`` → 予約) so an action
added elsewhere still reads as Japanese before it gets its own label.
"""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

ACTION_LABELS = {
    "audit.purge": _l("監査ログの期限切れ分を削除"),
    "auth.enrol_two_factor": _l("二要素認証を設定"),
    "auth.login": _l("ログイン"),
    "auth.two_factor": _l("二要素認証でログイン"),
    "login.failure": _l("ログイン失敗"),
    "login.sso": _l("シングルサインオンでログイン"),
    "autoreply.resume": _l("自動応答を再開"),
    "booking.cancel": _l("予約をキャンセル"),
    "booking.cancel_notice_sent": _l("予約キャンセルのお知らせを送信"),
    "booking.closure_notice": _l("休診による予約変更のお知らせを送信"),
    "booking.settings": _l("予約の設定を変更"),
    "booking.status": _l("予約の状態を変更"),
    "conversation.assign": _l("チャットの担当者を変更"),
    "conversation.status": _l("チャットのステータスを変更"),
    "conversation.view": _l("チャットを閲覧"),
    "delivery.cancel": _l("配信をキャンセル"),
    "delivery.refused": _l("配信が通数上限で止まりました"),
    "delivery.paused_for_billing": _l("お支払い未確認のため配信を止めました"),
    "billing.checkout_started": _l("ご契約の申し込みを開始"),
    "billing.portal_opened": _l("カスタマーポータルを開く"),
    "billing.duplicate_cancelled": _l("二重のご契約を取り消し"),
    "billing.subscription_status": _l("ご契約の状態が変わりました"),
    "billing.quantity_changed": _l("ご契約の院数を変更"),
    "billing.payment_failed": _l("お支払いを確認できませんでした"),
    "billing.payment_reminder": _l("お支払いの再通知"),
    "billing.marketing_paused": _l("お支払い未確認のため一斉配信を一時停止"),
    "billing.restored": _l("お支払いを確認し配信を再開"),
    "delivery.send": _l("配信を送信"),
    "message.send": _l("チャットでメッセージを送信"),
    "message.send.failed": _l("チャットのメッセージ送信に失敗"),
    "friends.erase": _l("友だちの個人データを削除"),
    "friends.export": _l("友だちの個人データを書き出し"),
    "privacy.friend_data": _l("友だちの個人データを閲覧"),
    "privacy.settings": _l("個人情報の設定を変更"),
    "invitation.create": _l("スタッフを招待"),
    "invitation.revoke": _l("招待を取り消し"),
    "membership.create": _l("スタッフを追加"),
    "membership.delete": _l("スタッフを削除"),
    "membership.update": _l("スタッフの権限を変更"),
    "organization.links.update": _l("グループ共通リンクを変更"),
    "richmenu.deploy": _l("リッチメニューを公開"),
    "security.key_rotation": _l("暗号鍵を更新"),
    "sso_provider.create": _l("シングルサインオンを設定"),
    "library.set.create": _l("ライブラリのセットを追加"),
    "library.set.update": _l("ライブラリのセットを変更"),
    "library.set.delete": _l("ライブラリのセットを削除"),
    "library.item.create": _l("ライブラリの項目を追加"),
    "library.item.update": _l("ライブラリの項目を変更"),
    "library.item.delete": _l("ライブラリの項目を削除"),
    "steps.scenario_saved": _l("ステップ配信のシナリオを保存"),
    "steps.scenario_status": _l("ステップ配信のシナリオを開始・停止"),
    "steps.step_saved": _l("ステップを保存"),
    "steps.step_deleted": _l("ステップを削除"),
    "steps.started": _l("友だちにシナリオを開始"),
    "steps.started_for_segment": _l("条件に合う友だちにシナリオを開始"),
    "steps.stopped": _l("友だちのシナリオを停止"),
    "steps.test_send": _l("シナリオをテスト送信"),
    "steps.waiting_for_quota": _l("通数不足でステップ配信が待機"),
    "steps.adopted": _l("ライブラリのシナリオを追加"),
    "form.saved": _l("フォームを保存"),
    "form.active": _l("フォームの受付を変更"),
    "form.deleted": _l("フォームを削除"),
    "form_answers.view": _l("フォームの回答一覧を閲覧"),
    "form_answer.view": _l("フォームの回答を閲覧"),
    "form_answers.exported": _l("フォームの回答を書き出し"),
    "visit.recorded": _l("来院を記録"),
    "visit.deleted": _l("来院記録を削除"),
    "adcheck.acknowledge": _l("医療広告チェックの注意を確認"),
    "adcheck.approve": _l("医療広告チェックの要承認の表現を承認"),
    "adcheck.rule.update": _l("医療広告チェックのルールを変更"),
    "delivery.approval.request": _l("配信の承認を依頼"),
    "delivery.approval.withdraw": _l("配信の承認依頼を取り下げ"),
    "delivery.approve": _l("配信を承認"),
    "delivery.decline": _l("配信を却下"),
    "delivery.test_send": _l("テスト送信"),
    "staff.line.link": _l("自分のLINEを連携"),
    "staff.line.unlink": _l("自分のLINEの連携を解除"),
    "send_guard.settings": _l("誤配信防止の設定を変更"),
    "group_publication.publish": _l("各院に配布"),
    "schedule.weekly": _l("診療時間を変更"),
    "analytics.settings.update": _l("分析の設定を変更"),
    "api.call": _l("APIを呼び出し"),
    "api_key.create": _l("APIキーを発行"),
    "api_key.revoke": _l("APIキーを無効化"),
    "audit.export": _l("監査ログを書き出し"),
    "card.expired": _l("ショップカードのポイントが期限切れ"),
    "card.reward": _l("ショップカードの特典を付与"),
    "card.settings": _l("ショップカードの設定を変更"),
    "card.stamped": _l("ショップカードにスタンプ"),
    "clinic.create": _l("医院を追加"),
    "clinic.profile": _l("医院情報を変更"),
    "closure.create": _l("休診を登録"),
    "conversation.media.view": _l("チャットの画像・ファイルを閲覧"),
    "coupon.closed": _l("クーポンの配布を終了"),
    "coupon.published": _l("クーポンを公開"),
    "coupon.redeem_refused": _l("クーポンの利用を受け付けず"),
    "coupon.redeemed": _l("クーポンを利用"),
    "coupon.saved": _l("クーポンを保存"),
    "coupon.sent": _l("クーポンを配信"),
    "delivery.failed": _l("配信に失敗"),
    "field.deleted": _l("友だち項目を削除"),
    "field.saved": _l("友だち項目を保存"),
    "friend.consent_changed": _l("友だちの配信同意を変更"),
    "friend.fields_changed": _l("友だちの項目の値を変更"),
    "friends.exported": _l("友だち一覧を書き出し"),
    "friends.imported": _l("友だちを取り込み"),
    "group_notice.create": _l("グループのお知らせを作成"),
    "group_notice.settings": _l("グループのお知らせの設定を変更"),
    "manifest.apply": _l("設定ファイルを適用"),
    "message.unsent": _l("患者がメッセージの送信を取り消し"),
    "quota.plan": _l("LINEのプランを設定"),
    "retention.settings": _l("データ保存期間を変更"),
    "session.revoke_all": _l("すべてのログインを終了"),
    "source.active": _l("流入経路の受付を切り替え"),
    "source.saved": _l("流入経路を保存"),
    "sso_provider.update": _l("シングルサインオンの設定を変更"),
    "tag.changed": _l("タグを変更"),
    "two_factor.reset": _l("二要素認証をリセット"),
}
AREA_LABELS = {
    "audit": _l("監査ログ"),
    "auth": _l("ログイン"),
    "login": _l("ログイン"),
    "autoreply": _l("自動応答"),
    "booking": _l("予約"),
    "channel": _l("LINE連携"),
    "conversation": _l("チャット"),
    "inbox": _l("チャット"),
    "delivery": _l("配信"),
    "message": _l("メッセージ"),
    "friends": _l("友だち"),
    "friend": _l("友だち"),
    "privacy": _l("個人情報"),
    "invitation": _l("招待"),
    "membership": _l("スタッフ"),
    "members": _l("スタッフ"),
    "organization": _l("グループ"),
    "richmenu": _l("リッチメニュー"),
    "schedule": _l("診療スケジュール"),
    "security": _l("セキュリティ"),
    "library": _l("ライブラリ"),
    "quota": _l("通数・プラン"),
    "steps": _l("ステップ配信"),
    "form": _l("フォーム"),
    "form_answers": _l("フォーム"),
    "form_answer": _l("フォーム"),
    "visit": _l("来院"),
    "billing": _l("ご契約・お支払い"),
    "adcheck": _l("医療広告チェック"),
    "staff": _l("スタッフ"),
    "send_guard": _l("誤配信防止"),
    "group_publication": _l("各院への配布"),
}
TARGET_LABELS = {
    "conversation_list": _l("チャット一覧"),
    "audit_log": _l("監査ログ"),
    "auto_reply_settings": _l("挨拶・有人対応の設定"),
    "user": _l("スタッフ"),
    "booking": _l("予約"),
    "clinic": _l("医院"),
    "delivery": _l("配信"),
    "friend": _l("友だち"),
    "invitation": _l("招待"),
    "membership": _l("スタッフ"),
    "organization": _l("グループ"),
    "privacy_settings": _l("個人情報の設定"),
    "richmenu": _l("リッチメニュー"),
    "sso_provider": _l("シングルサインオン"),
    "library_set": _l("ライブラリのセット"),
    "library_item": _l("ライブラリの項目"),
    "closure": _l("休診・代診"),
    "auto_reply_rule": _l("自動応答ルール"),
    "step_scenario": _l("ステップ配信のシナリオ"),
    "form": _l("フォーム"),
    "billing_account": _l("ご契約"),
    "group_publication": _l("各院への配布"),
}
DETAIL_LABELS = {
    "kind": _l("種類"),
    "title": _l("タイトル"),
    "recipients": _l("対象"),
    "skipped": _l("スキップ"),
    "segment": _l("条件"),
    "by": _l("作成者"),
    "role": _l("権限"),
    "email": _l("メールアドレス"),
    "user_email": _l("スタッフ"),
    "status": _l("ステータス"),
    "via": _l("送信方法"),
    "from": _l("変更前"),
    "to": _l("変更後"),
    "reason": _l("理由"),
    "needed": _l("必要な通数"),
    "remaining": _l("残り通数"),
    "limit": _l("上限"),
    "live": _l("新着"),
    "format": _l("形式"),
    "rows": _l("件数"),
    "messages": _l("メッセージ数"),
    "deleted": _l("削除件数"),
    "name": _l("名前"),
    "assignee_user_id": _l("担当者"),
    "sensitive": _l("要配慮個人情報を含む"),
    "day": _l("日付"),
    "form": _l("フォーム"),
    "active": _l("受付中"),
    "payer": _l("契約者"),
    "pause_at": _l("一時停止の予定"),
    "payment_failed_at": _l("支払いに失敗した日時"),
    "marketing_was_paused": _l("配信は一時停止中だった"),
    "before": _l("変更前"),
    "after": _l("変更後"),
    "quantity": _l("院数"),
    "plan": _l("プラン"),
    "subscription": _l("契約番号"),
}
VALUE_LABELS = {
    "broadcast": _l("全員配信"),
    "segment": _l("セグメント配信"),
    "urgent": _l("緊急のお知らせ"),
    "push": _l("個別送信"),
    "reply": _l("応答メッセージ（無料）"),
    "open": _l("未対応"),
    "waiting": _l("返信待ち"),
    "resolved": _l("解決済み"),
}
HIDDEN_DETAILS = {"owner", "set_id", "invitation_id", "provider_id"}  # ids that say nothing to staff


def action_label(code: str) -> str:
    """The Japanese label of an audit action code."""
    if code in ACTION_LABELS:
        return str(ACTION_LABELS[code])
    area = AREA_LABELS.get(code.split(".", 1)[0])
    return _("%(area)sの操作", area=area) if area else _("その他の操作")


def target_label(target_type: str | None, target_id) -> str:
    """「友だち #12」 for ("friend", 12); empty when the event has no target."""
    if not target_type:
        return ""
    name = str(TARGET_LABELS.get(target_type, _l("対象")))
    return f"{name} #{target_id}" if target_id else name


def _value_text(value) -> str:
    if isinstance(value, bool):
        return _("はい") if value else _("いいえ")
    if isinstance(value, str) and value in VALUE_LABELS:
        return str(VALUE_LABELS[value])
    if isinstance(value, dict):
        return "、".join(f"{key}: {_value_text(item)}" for key, item in value.items()) or "—"
    if isinstance(value, list | tuple):
        return "、".join(_value_text(item) for item in value) or "—"
    if value is None:
        return "—"
    return str(value)


def detail_items(details: dict | None) -> list[tuple[str, str]]:
    """(label, value) pairs of an event's details, ids that mean nothing to staff left out."""
    from saas.delivery.describe import describe_segment, title_in_words
    from saas.delivery.services import SKIP_REASONS

    items = []
    for key, value in (details or {}).items():
        if key in HIDDEN_DETAILS or value in ({}, [], None, ""):
            continue
        if key == "title" and isinstance(value, str):
            text = title_in_words(value)
        elif key == "segment" and isinstance(value, dict):
            text = "、".join(f"{label}：{condition}" for label, condition in describe_segment(value))
        elif key == "skipped" and isinstance(value, dict):
            text = "、".join(f"{_(SKIP_REASONS.get(reason, reason))} {count}" for reason, count in value.items())
        else:
            text = _value_text(value)
        items.append((str(DETAIL_LABELS.get(key, key)), text))
    return items
