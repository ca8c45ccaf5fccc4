"""Benchmark: auto-reply matching cost per message at 10, 1,000 and 10,000 rules.

Run: ``python -m tests.perf.faq_matching``

It measures the per-message path the webhook worker runs once the clinic's rules are
compiled (normalise → one Aho-Corasick scan → pick the best candidate), over a fixed mix
of patient messages: some hit a rule, some hit several, some hit nothing. Compilation is
timed separately: it runs once per rule change per process (see saas/autoreply/cache.py).
Expected: microseconds per message flat within a small factor as rules grow, because the
scan depends on the message length and the number of hits, not on the number of rules.
Regex rules are not included: they are the documented exception (guarded by a literal).

Baseline, same rules and messages: what one would write first, a loop over the rules with one
compiled regular expression each (the keywords of a rule joined with ``|``), keeping the
highest-priority hit. Its cost grows with the number of rules.
"""

from __future__ import annotations

import argparse
import random
import re
import time

from saas.autoreply.matcher import Entry, best_entry, compile_entries
from saas.autoreply.normalize import normalize

MESSAGES = [
    "駐車場はありますか",
    "ﾁｭｳｼｬｼﾞｮｳ",
    "今日の診療時間を教えてください",
    "予約の変更をしたいです",
    "インフルエンザの予防接種はいつからですか",
    "ありがとうございました",
    "子どもが熱を出しました。今から行っても大丈夫ですか？",
    "支払いにクレジットカードは使えますか",
]
BASE_KEYWORDS = [["駐車場", "ちゅうしゃじょう"], ["今日の診療"], ["予約"], ["予防接種"], ["支払い", "カード"]]
ROUNDS = 20_000


def synthetic_rules(count: int) -> tuple[list[Entry], list[tuple[str, list[str], str]]]:
    """``count`` rules: the realistic ones plus filler keywords patients rarely type."""
    rng = random.Random(count)
    entries, keywords = [], []
    for index in range(count):
        words = BASE_KEYWORDS[index] if index < len(BASE_KEYWORDS) else [f"項目{index}番{rng.randint(0, 9999)}"]
        entries.append(Entry(f"rule:{index}", f"rule {index}", rng.randint(1, 200), order=index))
        keywords.append(("contains", words, ""))
    return entries, keywords


def per_message_microseconds(count: int) -> tuple[float, float]:
    entries, keywords = synthetic_rules(count)
    started = time.perf_counter()
    compiled = compile_entries(entries, keywords)
    compile_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    for n in range(ROUNDS):
        best_entry(compiled, normalize(MESSAGES[n % len(MESSAGES)]))
    return (time.perf_counter() - started) / ROUNDS * 1_000_000, compile_ms


def regex_loop_microseconds(count: int) -> float:
    """The baseline: every rule's compiled regex tried in turn on the normalised message."""
    entries, keywords = synthetic_rules(count)
    patterns = [
        (entry.priority, re.compile("|".join(re.escape(normalize(word)) for word in words)))
        for entry, (_, words, _) in zip(entries, keywords, strict=True)
    ]
    rounds = max(200, ROUNDS // max(1, count // 100))  # the slow loop gets fewer rounds
    started = time.perf_counter()
    for n in range(rounds):
        text = normalize(MESSAGES[n % len(MESSAGES)])
        best = None
        for priority, pattern in patterns:
            if pattern.search(text) and (best is None or priority > best):
                best = priority
    return (time.perf_counter() - started) / rounds * 1_000_000


def main(argv: list[str] | None = None) -> dict:
    from tests.perf import support

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default="")
    args = parser.parse_args(argv)
    print(f"{'rules':>8} {'µs/message':>12} {'compile ms':>12} {'regex loop µs':>14}")
    rows = []
    for count in (10, 1_000, 10_000):
        micros, compile_ms = per_message_microseconds(count)
        baseline = regex_loop_microseconds(count)
        rows.append({"rules": count, "automaton_us": micros, "compile_ms": compile_ms, "regex_loop_us": baseline})
        print(f"{count:>8,} {micros:>12.2f} {compile_ms:>12.1f} {baseline:>14.2f}")
    figures = [row["automaton_us"] for row in rows]
    print(f"largest / smallest per-message cost: {max(figures) / min(figures):.2f}x")
    result = {"machine": support.machine(), "rows": rows}
    support.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
