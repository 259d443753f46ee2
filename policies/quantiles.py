"""Quantiles of the normal and Student's t distributions, without scipy (for the intervals).

Student's t: Newton on the exact CDF (the regularized incomplete beta by Lentz's continued
fraction) up to 1,000 degrees of freedom, Cornish-Fisher's expansion above.
"""

from __future__ import annotations

import math
from statistics import NormalDist

_NORMAL = NormalDist()


def normal_quantile(p: float) -> float:
    return _NORMAL.inv_cdf(p)


def student_t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t with `df` degrees of freedom: Newton on the exact CDF up to 1,000
    degrees of freedom, Cornish-Fisher's expansion (Abramowitz & Stegun 26.7.5) above."""
    if not 0 < p < 1 or not df > 0:
        raise ValueError(f"need 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -student_t_quantile(1 - p, df)
    z = _NORMAL.inv_cdf(p)
    if df > 1000:
        z2 = z * z
        g1 = (z2 + 1) * z / 4
        g2 = ((5 * z2 + 16) * z2 + 3) * z / 96
        g3 = (((3 * z2 + 19) * z2 + 17) * z2 - 15) * z / 384
        g4 = ((((79 * z2 + 776) * z2 + 1482) * z2 - 1920) * z2 - 945) * z / 92160
        return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4
    low, high = 0.0, max(1.0, 2 * z)
    while _t_cdf(high, df) < p:
        low, high = high, 2 * high
    t = (low + high) / 2
    for _ in range(200):  # Newton, kept inside the bracket by bisection
        f = _t_cdf(t, df) - p
        if f == 0:
            return t
        low, high = (low, t) if f > 0 else (t, high)
        step = t - f / _t_pdf(t, df)
        step = step if low < step < high else (low + high) / 2
        if abs(step - t) <= 1e-15 * max(1.0, t):
            return step
        t = step
    return t


def _t_pdf(t: float, df: float) -> float:
    log = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log - (df + 1) / 2 * math.log1p(t * t / df))


def _t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for t ≥ 0: 1 − I_x(df/2, 1/2)/2 with x = df/(df + t²)."""
    x, y = df / (df + t * t), t * t / (df + t * t)
    return 1 - 0.5 * _betainc(df / 2, 0.5, x, y)


def _betainc(a: float, b: float, x: float, y: float) -> float:
    """Regularized incomplete beta I_x(a, b), y = 1 − x (Lentz's continued fraction)."""
    if x <= 0:
        return 0.0
    if y <= 0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y)
    )
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1 - math.exp(log_front) * _beta_fraction(b, a, y) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 10_000):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1) < 1e-15:
            break
    return result
