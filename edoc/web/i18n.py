"""The viewer's words in Japanese (the default: the people at the screen are a tax official
and an accountant) and English; ``?lang=en`` switches, a cookie remembers."""

from __future__ import annotations

from collections.abc import Callable

LANGS = ("ja", "en")
DEFAULT = "ja"

#: key -> (Japanese, English)
WORDS: dict[str, tuple[str, str]] = {
    "app": ("電子帳簿 閲覧", "edoc viewer"),
    "login": ("ログイン", "Log in"),
    "logout": ("ログアウト", "Log out"),
    "account": ("アカウント", "Account"),
    "password": ("パスワード", "Password"),
    "login_failed": ("アカウント名またはパスワードが違います", "Wrong account name or password"),
    "locked": ("ログイン失敗が続いたため、このアカウントはロックされています",
               "This account is locked after repeated failed logins"),
    "search": ("検索", "Search"),
    "date_from": ("取引年月日 (から)", "Transaction date from"),
    "date_to": ("取引年月日 (まで)", "Transaction date to"),
    "min_amount": ("取引金額 (以上)", "Amount at least (yen)"),
    "max_amount": ("取引金額 (以下)", "Amount at most (yen)"),
    "counterparty": ("取引先", "Counterparty"),
    "counterparty_search": ("取引先 (一部でも可)", "Counterparty (part of the name)"),
    "registration_number": ("登録番号 (T番号)", "Registration number (T-number)"),
    "doc_type": ("書類の種類", "Document type"),
    "ledger_ref": ("帳簿の参照", "Ledger reference"),
    "invoice_number": ("請求書番号", "Invoice number"),
    "include_deleted": ("削除済みも含める", "Include deleted records"),
    "and_note": ("指定した条件はすべて満たすもの (AND) を表示します",
                 "Records matching every condition given (AND)"),
    "results": ("検索結果", "Results"),
    "no_results": ("該当する記録はありません", "No matching records"),
    "csv": ("CSV ダウンロード", "Download CSV"),
    "page": ("ページ", "Page"),
    "next": ("次へ", "Next"),
    "prev": ("前へ", "Previous"),
    "record": ("記録", "Record"),
    "record_id": ("記録ID", "Record id"),
    "version": ("版", "Version"),
    "state": ("状態", "State"),
    "transaction_date": ("取引年月日", "Transaction date"),
    "amount": ("取引金額", "Amount"),
    "file": ("ファイル", "File"),
    "metadata": ("記録項目", "Metadata"),
    "provenance": ("項目の出所", "Field provenance"),
    "history": ("訂正削除履歴", "Correction and deletion history"),
    "kind": ("種別", "Kind"),
    "ingested_at": ("保存日時", "Stored at"),
    "actor": ("実施者", "By"),
    "reason": ("理由", "Reason"),
    "view": ("表示", "View"),
    "retention": ("保存期間", "Retention"),
    "retain_until": ("保存期限", "Retain until"),
    "holds": ("保存の停止 (リーガルホールド)", "Legal holds"),
    "no_holds": ("保存の停止はありません", "No legal holds"),
    "verify": ("検証", "Verify"),
    "verify_result": ("検証結果", "Verification"),
    "check": ("検査", "Check"),
    "status": ("結果", "Status"),
    "detail": ("詳細", "Detail"),
    "bundle": ("証拠パッケージをダウンロード", "Download evidence bundle"),
    "original": ("原本をダウンロード", "Download the original"),
    "document": ("書類", "Document"),
    "zoom_in": ("拡大", "Zoom in"),
    "zoom_out": ("縮小", "Zoom out"),
    "zoom_reset": ("等倍", "Fit"),
    "print": ("印刷", "Print"),
    "print_view": ("印刷用表示", "Print view"),
    "no_preview": ("この書類は画面に表示できません (原本をダウンロードしてください)",
                   "This document cannot be shown here (download the original)"),
    "derived": ("表示は保存された原本から作成した画像です",
                "Shown as images made from the stored original"),
    "back": ("検索に戻る", "Back to search"),
    "error": ("エラー", "Error"),
    "not_allowed": ("この操作の権限がありません", "Your role does not allow this"),
    "read_only": ("この画面から記録を変更することはできません",
                  "Records cannot be changed from this viewer"),
    "seamless": ("デジタルシームレス", "Digital seamless"),
}


def translator(lang: str) -> Callable[[str], str]:
    index = 1 if lang == "en" else 0

    def t(key: str) -> str:
        pair = WORDS.get(key)
        return pair[index] if pair else key

    return t
