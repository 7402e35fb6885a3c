"""Law names -> classes. Mixture laws are compared on every project; scale laws where runs differ in scale."""

from __future__ import annotations

from engine.errors import InputError
from engine.laws.exponential import ExponentialLaw
from engine.laws.gp import GPLaw
from engine.laws.linear import LinearLaw
from engine.laws.power import ChinchillaLaw, TokenPowerLaw
from engine.laws.stack import StackLaw
from engine.laws.trees import LightGBMLaw

MIXTURE_LAWS = {cls.name: cls for cls in (LinearLaw, ExponentialLaw, GPLaw, LightGBMLaw, StackLaw)}
SCALE_LAWS = {cls.name: cls for cls in (TokenPowerLaw, ChinchillaLaw)}
DEFAULT_LAWS = list(MIXTURE_LAWS)


def mixture_law(name: str):
    """The mixture-law class called ``name``; an InputError lists the known ones."""
    try:
        return MIXTURE_LAWS[name]
    except KeyError:
        raise InputError(f"unknown law '{name}'.", hint=f"use one of: {', '.join(MIXTURE_LAWS)}") from None
