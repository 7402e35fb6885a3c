"""Column roles and name cleaning.

Tidy CSV columns get their role from a documented prefix; the prefix is then
dropped from the domain or target name. The RegMix pair's names also lose the
``_val_loss`` suffix and the corpus prefix every name shares (``the_pile_``),
so ``train_the_pile_pile_cc`` and ``metric/the_pile_pile_cc_val_loss`` both
become ``pile_cc``.
"""

from __future__ import annotations

import os
import re

RUN_ID_COLUMNS = ("run_id", "run", "run_name", "id", "index")
TOKENS_COLUMNS = ("tokens", "tokens_seen", "num_tokens")
TOTAL_TOKENS_COLUMNS = ("total_tokens", "run_tokens")
PARAMS_COLUMNS = ("model_params", "params", "n_params", "num_params")
# Run fields with their own store column; anything else that is not a role goes to provenance.
RUN_FIELD_COLUMNS = ("seed", "seq_len", "tokenizer", "framework", "method")

MIXTURE_PREFIXES = ("mix:", "mix/", "p_", "train_")
METRIC_PREFIXES = ("loss:", "metric:", "metric/", "eval:", "eval/", "eval_")
HIGHER_METRIC_PREFIXES = ("acc:", "score:")  # metrics where higher is better
TARGET_SUFFIXES = ("_val_loss",)

# Words that mark a metric where higher is better (accuracy-like), matched as whole tokens of the name.
_HIGHER_WORDS = {"acc", "accuracy", "f1", "em", "exact_match", "bleu", "rouge", "pass@1", "pass@k", "score"}


def find_column(header: list[str], candidates: tuple[str, ...]) -> str | None:
    """The first header entry equal (case-insensitively) to one of ``candidates``, in candidate order."""
    lowered = {h.strip().lower(): h for h in header}
    for name in candidates:
        if name in lowered:
            return lowered[name]
    return None


def mixture_role(column: str) -> str | None:
    """The domain a mixture column describes, or None if the column has no mixture prefix."""
    for prefix in MIXTURE_PREFIXES:
        if column.lower().startswith(prefix) and len(column) > len(prefix):
            return column[len(prefix):]
    return None


def metric_role(column: str) -> tuple[str, str] | None:
    """(target, direction) a metric column describes, or None if the column has no metric prefix."""
    low = column.lower()
    for prefix in HIGHER_METRIC_PREFIXES:
        if low.startswith(prefix) and len(column) > len(prefix):
            return strip_target_suffix(column[len(prefix):]), "higher"
    for prefix in METRIC_PREFIXES:
        if low.startswith(prefix) and len(column) > len(prefix):
            target = strip_target_suffix(column[len(prefix):])
            return target, guess_direction(target)
    return None


def strip_target_suffix(name: str) -> str:
    for suffix in TARGET_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def guess_direction(target: str) -> str:
    """'higher' for accuracy-like names (``acc``, ``f1``, ``exact_match``...), else 'lower' (losses, bits per byte)."""
    words = set(re.split(r"[^a-z0-9@]+", target.lower()))
    if words & _HIGHER_WORDS or "exact_match" in target.lower():
        return "higher"
    return "lower"


def shared_prefix(names: list[str]) -> str:
    """The longest prefix ending in '_' that every name shares and that leaves every name non-empty."""
    if len(names) < 2:
        return ""
    common = os.path.commonprefix(names)
    cut = common.rfind("_")
    if cut < 0:
        return ""
    prefix = common[: cut + 1]
    if any(len(n) <= len(prefix) for n in names):
        return ""
    return prefix


def clean_regmix_names(domain_columns: list[str], target_columns: list[str]) -> tuple[list[str], list[str]]:
    """RegMix names -> short names: role prefix, ``_val_loss`` and the shared corpus prefix removed.

    The corpus prefix is stripped only when the domains and the targets all share it, so a
    pair whose names differ in their first word keeps them whole.
    """
    domains = [mixture_role(c) or c for c in domain_columns]
    targets = [(metric_role(c) or (strip_target_suffix(c), "lower"))[0] for c in target_columns]
    prefix = shared_prefix(domains + targets)
    if prefix:
        domains = [d[len(prefix):] for d in domains]
        targets = [t[len(prefix):] for t in targets]
    return domains, targets
