"""A constant spread around the mid, skewed by inventory: ``AvellanedaStoikovStrategy`` with
``model="linear"`` and nothing estimated, the simple quoter the hftbacktest cross-check runs
(``scripts/crosscheck_hftbacktest.py``).

On every event of each feed, with ``q`` the position the fill reports add up to, in lots::

    bid = mid − half_spread − skew·q,   ask = mid + half_spread − skew·q
    post_only: bid ≤ best ask − tick, ask ≥ best bid + tick; then the bid rounded down and
    the ask up to the tick
    size: lot, capped so that no fill of any working order takes |q| past max_inventory

Orders are managed as the parent's ``requote`` says (``"live"`` by default: one working
order per side, a quote that moves by a tick is cancelled once acknowledged and replaced
once the cancel is confirmed; see ``strategies.orders.TwoSidedQuoting``).
"""

from __future__ import annotations

from .market_maker import AvellanedaStoikovStrategy

__all__ = ["ConstantSpreadStrategy"]


class ConstantSpreadStrategy(AvellanedaStoikovStrategy):
    """Constant-spread-plus-skew quoting (see the module doc).

    Params over ``AvellanedaStoikovStrategy``'s: ``half_spread`` (price, 0.5), ``skew``
    (price per lot of inventory, 0.1), ``lot`` (contracts per order, 0.01), ``tick`` (price
    increment, 0.1), ``max_inventory`` (lots, 10), ``post_only`` (``True``), no trend, no
    size decay (``eta=0``) and a requote on any move of a tick (``requote_threshold=0``).
    """

    params = dict(model="linear", half_spread=0.5, skew=0.1, lot=0.01, tick=0.1,
                  size_step=0.001, max_inventory=10.0, trend=None, eta=0.0,
                  requote_threshold=0.0)
