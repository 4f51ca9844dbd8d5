"""Tests for search/cache.py."""

from __future__ import annotations

from dsl import library, parse
from search.cache import Cache


def test_hits_by_structure_and_by_fingerprint() -> None:
    cache = Cache()
    lion = library.get("lion")
    assert cache.lookup(Cache.keys(lion)) is None
    cache.store(Cache.keys(lion), {"fitness": 0.3, "id": 7})
    renamed = parse(lion.to_source().replace("update", "u"))
    assert cache.lookup(Cache.keys(renamed)) == {"fitness": 0.3, "id": 7}
    sign = parse("def train(w, g, lr, t, m):\n  a = interp(g, m, 0.9)\n  q = a * a\n"
                 "  r = sqrt(q)\n  u = a / r\n  m = interp(g, m, 0.99)\n  d = w * 0.001\n"
                 "  u = u + d\n  u = u * lr\n  return u, m\n")
    assert cache.lookup(Cache.keys(sign))["id"] == 7  # same function, other structure
    assert cache.hits == 2 and cache.lookups == 3
    assert abs(cache.hit_rate - 2 / 3) < 1e-12
    again = Cache.from_state(cache.state_dict())
    assert again.lookup(Cache.keys(lion))["id"] == 7
