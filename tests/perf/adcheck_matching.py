"""Benchmark: the 医療広告 check's cost per message with the shipped rules and with 1,000 and 10,000
phrases an organization added.

Run: ``python -m tests.perf.adcheck_matching``

It measures what the live panel and every submit run once the organization's rules are compiled
(normalise with offsets → one Aho-Corasick scan → the rules' hits and required notes) over a mix of
ordinary notices and advertising texts. Compilation is timed separately: it runs once per override
change per process. Expected: microseconds per message flat within a small factor as phrases grow.

Baseline, same rules and texts: a loop over every phrase with one compiled regular expression each on
the normalised text — what one would write first. Its cost grows with the number of phrases.
"""

from __future__ import annotations

import re
import time

from saas.adcheck.checker import CompiledRuleSet
from saas.adcheck.rules import Override, shipped_rules, with_overrides
from saas.autoreply.normalize import normalize

TEXTS = [
    "【休診のお知らせ】12月29日から1月3日まで年末年始の休診とさせていただきます。",
    "当院は地域ＮＯ．１の実績！初診料無料キャンペーン実施中",
    "インフルエンザ予防接種の予約受付を10月1日から開始します。",
    "ビフォーアフター写真を公開中。治療内容：ヒアルロン酸注入、費用：55,000円",
    "【予約リマインド】明日 10:30 にご予約をいただいております。保険証をお持ちください。",
    "ご来院の方にもれなくクオカードをプレゼント",
]
ROUNDS = 5_000


def rules_with(extra: int):
    phrases = tuple(f"追加表現{index}号" for index in range(extra))
    return with_overrides(shipped_rules(), [Override("exaggeration", extra_phrases=phrases)])


def per_text_microseconds(extra: int) -> tuple[float, float]:
    started = time.perf_counter()
    checker = CompiledRuleSet(rules_with(extra))
    compile_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    for n in range(ROUNDS):
        checker.check(TEXTS[n % len(TEXTS)])
    return (time.perf_counter() - started) / ROUNDS * 1_000_000, compile_ms


def regex_loop_microseconds(extra: int) -> float:
    """The baseline: each phrase of each rule tried in turn as its own regex."""
    patterns = [re.compile(re.escape(normalize(p))) for rule in rules_with(extra) for p in rule.phrases if normalize(p)]
    rounds = max(200, ROUNDS // max(1, extra // 100))
    started = time.perf_counter()
    for n in range(rounds):
        text = normalize(TEXTS[n % len(TEXTS)])
        [pattern.search(text) for pattern in patterns]
    return (time.perf_counter() - started) / rounds * 1_000_000


def main() -> None:
    print(f"{'added phrases':>14} {'compile ms':>11} {'µs/text':>9} {'regex loop µs/text':>19}")
    for extra in (0, 1_000, 10_000):
        micro, compile_ms = per_text_microseconds(extra)
        print(f"{extra:>14,} {compile_ms:>11.1f} {micro:>9.1f} {regex_loop_microseconds(extra):>19.1f}")


if __name__ == "__main__":
    main()
