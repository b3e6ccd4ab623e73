"""The two-sided one-sample Kolmogorov distribution ``kstwo.sf(d, n)`` without importing scipy.stats.

``scipy.stats.ks_2samp(method="asymp")`` reports ``kstwo.sf(D, round(n*m/(n+m)))``. Importing
``scipy.stats`` costs 1-2 s, more than the whole drift computation of a column, so this module
computes the same function with NumPy alone, following scipy's own algorithm choice
(``scipy/stats/_ksstats.py``, Simard & L'Ecuyer 2011) branch by branch:

- ``n*d <= 1`` and ``n*d >= n - 1``: Ruben-Gambino closed forms;
- ``n*d**2 >= 370``: 0; ``d >= 0.5`` or ``n*d**2 >= 2.2`` (n > 140): ``2 * smirnov(n, d)``, the
  one-sided Smirnov tail, here as the Birnbaum-Tingey sum evaluated in log space with Stirling's
  series (scipy sums the same series in double-double); above n = 10**6 scipy's (and our)
  closed-form approximation ``exp(-(6nd+1)**2 / 18n)``;
- otherwise ``1 - CDF`` with the Durbin matrix (Marsaglia-Tsang-Wang), Pomeranz's recursion
  (n <= 140) or the Pelz-Good series, ported from scipy.

The tests compare this with scipy to 1e-12 over a grid of ``n`` and ``d`` that covers every branch.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

_E128 = 128
_EP128 = float(np.ldexp(1.0, _E128))
_EM128 = float(np.ldexp(1.0, -_E128))
_SQRT2PI = math.sqrt(2 * math.pi)
_LOG_2PI = math.log(2 * math.pi)
_MIN_LOG = -708
_SQRT3 = math.sqrt(3)
_PI_SQUARED = math.pi ** 2
_PI_FOUR = math.pi ** 4
_PI_SIX = math.pi ** 6
_STIRLING_COEFFS = [-2.955065359477124183e-2, 6.4102564102564102564e-3,
                    -1.9175269175269175269e-3, 8.4175084175084175084e-4,
                    -5.952380952380952381e-4, 7.9365079365079365079e-4,
                    -2.7777777777777777778e-3, 8.3333333333333333333e-2]
SMIRNOV_MAX_COMPUTE_N = 1_000_000
_EXACT_STIRLING = 32
# log(k!) - (k log k - k + log(2 pi k) / 2) for small k, where the asymptotic series is not exact enough
_STIRLING_SMALL = np.array([0.0] + [math.lgamma(k + 1) - (k * math.log(k) - k + 0.5 * math.log(2 * math.pi * k))
                                    for k in range(1, _EXACT_STIRLING)])


def _clip(p: float) -> float:
    return float(min(max(p, 0.0), 1.0))


def _stirling_rest(k: np.ndarray) -> np.ndarray:
    """``log(k!) - (k log k - k + log(2 pi k)/2)`` for integer ``k >= 1`` (exact table, then the series)."""
    k = np.asarray(k, dtype=np.float64)
    out = np.empty_like(k)
    small = k < _EXACT_STIRLING
    out[small] = _STIRLING_SMALL[k[small].astype(np.int64)]
    big = k[~small]
    r = 1.0 / big
    r2 = r * r
    out[~small] = r * (1 / 12 - r2 * (1 / 360 - r2 * (1 / 1260 - r2 * (1 / 1680 - r2 / 1188))))
    return out


def smirnov(n: int, x: float) -> float:
    """One-sided Smirnov tail ``P(D+_n > x)`` (``scipy.special.smirnov``)."""
    if not (n > 0 and 0.0 <= x <= 1.0):
        return float("nan")
    if n == 1:
        return 1.0 - x
    if x == 0.0:
        return 1.0
    if x == 1.0:
        return 0.0
    exact_nx = Fraction(x) * n  # floor(n x) and its remainder exactly, as scipy's double-double modNX
    nxfl = math.floor(exact_nx)
    alpha = float(exact_nx - nxfl)
    nx = float(exact_nx)
    if nxfl == 0 or (nxfl == 1 and alpha == 0):  # x <= 1/n
        return _clip(1.0 - x * (1.0 + x) ** (n - 1))
    if -2 * n * x * x < -708.3964185322641:
        return 0.0
    if nxfl >= n - 1:
        return _clip((1.0 - x) ** n)
    if n > SMIRNOV_MAX_COMPUTE_N:
        logp = -((6.0 * n * x + 1) ** 2) / 18.0 / n
        return _clip(math.exp(logp) if logp < -math.log(2) else 1.0 - (-math.expm1(logp)))
    last = n - nxfl - (0 if alpha == 0 else 1)  # terms v = 0 .. last (Birnbaum-Tingey)
    if alpha == 0:
        last -= 1
    # A_v = C(n, v) (1 - x - v/n)^(n - v) (x + v/n)^(v - 1); sf = x * sum_v A_v.
    # With Stirling's formula for the factorials, the large n log n parts cancel exactly:
    # log A_v = log n + (n-v) log1p(-nx/(n-v)) + v log1p(nx/v) - log(v+nx)
    #           + log(n / (2 pi v (n-v))) / 2 + s(n) - s(v) - s(n-v)      (1 <= v < n)
    with np.errstate(divide="ignore"):  # a term whose base rounds to 0 is 0
        v = np.arange(1, last + 1, dtype=np.float64)
        rest = n - v
        log_a = (math.log(n) + rest * np.log1p(-nx / rest) + v * np.log1p(nx / v) - np.log(v + nx)
                 + 0.5 * np.log(n / (2 * math.pi * v * rest))
                 + _stirling_rest(np.array([n]))[0] - _stirling_rest(v) - _stirling_rest(rest))
    log_a0 = n * math.log1p(-x) - math.log(x)  # v = 0: (1 - x)^n / x
    logs = np.concatenate([[log_a0], log_a])
    top = float(np.max(logs))
    total = float(np.sum(np.exp(logs - top)))
    return _clip(x * total * math.exp(top))


def _log_nfactorial_div_n_pow_n(n: int) -> float:
    rn = 1.0 / n
    return math.log(n) / 2 - n + _LOG_2PI / 2 + rn * float(np.polyval(_STIRLING_COEFFS, rn / n))


def _kolmogn_dmtw(n: int, d: float) -> float:
    """CDF by the Durbin matrix algorithm (Marsaglia, Tsang, Wang 2003); scipy's ``_kolmogn_DMTW``."""
    if d >= 1.0:
        return 1.0
    nd = n * d
    if nd <= 0.5:
        return 0.0
    k = int(np.ceil(nd))
    h = k - nd
    m = 2 * k - 1
    H = np.zeros([m, m])
    intm = np.arange(1, m + 1)
    v = 1.0 - h ** intm
    w = np.empty(m)
    fac = 1.0
    for j in intm:
        w[j - 1] = fac
        fac /= j
        v[j - 1] *= fac
    tt = max(2 * h - 1.0, 0) ** m - 2 * h ** m
    v[-1] = (1.0 + tt) * fac
    for i in range(1, m):
        H[i - 1:, i] = w[:m - i + 1]
    H[:, 0] = v
    H[-1, :] = np.flip(v, axis=0)
    Hpwr = np.eye(np.shape(H)[0])
    nn = n
    expnt = 0
    Hexpnt = 0
    while nn > 0:
        if nn % 2:
            Hpwr = np.matmul(Hpwr, H)
            expnt += Hexpnt
        H = np.matmul(H, H)
        Hexpnt *= 2
        if np.abs(H[k - 1, k - 1]) > _EP128:
            H /= _EP128
            Hexpnt += _E128
        nn = nn // 2
    p = Hpwr[k - 1, k - 1]
    for i in range(1, n + 1):
        p = i * p / n
        if np.abs(p) < _EM128:
            p *= _EP128
            expnt -= _E128
    if expnt != 0:
        p = np.ldexp(p, expnt)
    return _clip(float(p))


def _pomeranz_j1j2(i: int, n: int, ll: int, ceilf: int, roundf: int) -> tuple[int, int]:
    if i == 0:
        j1, j2 = -ll - ceilf - 1, ll + ceilf - 1
    else:
        ip1div2, ip1mod2 = divmod(i + 1, 2)
        if ip1mod2 == 0:
            if ip1div2 == n + 1:
                j1, j2 = n - ll - ceilf - 1, n + ll + ceilf - 1
            else:
                j1, j2 = ip1div2 - 1 - ll - roundf - 1, ip1div2 + ll - 1 + ceilf - 1
        else:
            j1, j2 = ip1div2 - 1 - ll - 1, ip1div2 + ll + roundf - 1
    return max(j1 + 2, 0), min(j2, n)


def _kolmogn_pomeranz(n: int, x: float) -> float:
    """CDF by Pomeranz's recursion (n <= 140); scipy's ``_kolmogn_Pomeranz``."""
    t = n * x
    ll = int(np.floor(t))
    f = 1.0 * (t - ll)
    g = min(f, 1.0 - f)
    ceilf = 1 if f > 0 else 0
    roundf = 1 if f > 0.5 else 0
    npwrs = 2 * (ll + 1)
    gpower = np.empty(npwrs)
    twogpower = np.empty(npwrs)
    onem2gpower = np.empty(npwrs)
    gpower[0] = twogpower[0] = onem2gpower[0] = 1.0
    expnt = 0
    g_over_n, two_g_over_n, one_minus_two_g_over_n = g / n, 2 * g / n, (1 - 2 * g) / n
    for m in range(1, npwrs):
        gpower[m] = gpower[m - 1] * g_over_n / m
        twogpower[m] = twogpower[m - 1] * two_g_over_n / m
        onem2gpower[m] = onem2gpower[m - 1] * one_minus_two_g_over_n / m
    V0 = np.zeros([npwrs])
    V1 = np.zeros([npwrs])
    V1[0] = 1
    V0s, V1s = 0, 0
    j1, j2 = _pomeranz_j1j2(0, n, ll, ceilf, roundf)
    for i in range(1, 2 * n + 2):
        k1 = j1
        V0, V1 = V1, V0
        V0s, V1s = V1s, V0s
        V1.fill(0.0)
        j1, j2 = _pomeranz_j1j2(i, n, ll, ceilf, roundf)
        if i == 1 or i == 2 * n + 1:
            pwrs = gpower
        else:
            pwrs = twogpower if i % 2 else onem2gpower
        ln2 = j2 - k1 + 1
        if ln2 > 0:
            conv = np.convolve(V0[k1 - V0s:k1 - V0s + ln2], pwrs[:ln2])
            conv_start = j1 - k1
            conv_len = j2 - j1 + 1
            V1[:conv_len] = conv[conv_start:conv_start + conv_len]
            if 0 < np.max(V1) < _EM128:
                V1 *= _EP128
                expnt -= _E128
            V1s = V0s + j1 - k1
    ans = V1[n - V1s]
    for m in range(1, n + 1):
        if np.abs(ans) > _EP128:
            ans *= _EM128
            expnt += _E128
        ans *= m
    if expnt != 0:
        ans = np.ldexp(ans, expnt)
    return _clip(float(ans))


def _kolmogn_pelz_good(n: int, x: float) -> float:
    """CDF by the Pelz-Good asymptotic series; scipy's ``_kolmogn_PelzGood``."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    z = np.sqrt(n) * x
    zsquared, zthree, zfour, zsix = z ** 2, z ** 3, z ** 4, z ** 6
    qlog = -_PI_SQUARED / 8 / zsquared
    if qlog < _MIN_LOG:
        return 0.0
    q = np.exp(qlog)
    k1a = -zsquared
    k1b = _PI_SQUARED / 4
    k2a = 6 * zsix + 2 * zfour
    k2b = (2 * zfour - 5 * zsquared) * _PI_SQUARED / 4
    k2c = _PI_FOUR * (1 - 2 * zsquared) / 16
    k3d = _PI_SIX * (5 - 30 * zsquared) / 64
    k3c = _PI_FOUR * (-60 * zsquared + 212 * zfour) / 16
    k3b = _PI_SQUARED * (135 * zfour - 96 * zsix) / 4
    k3a = -30 * zsix - 90 * z ** 8
    K0to3 = np.zeros(4)
    maxk = int(np.ceil(16 * z / np.pi))
    for k in range(maxk, 0, -1):
        m = 2 * k - 1
        msquared, mfour, msix = m ** 2, m ** 4, m ** 6
        qpower = np.power(q, 8 * k)
        coeffs = np.array([1.0,
                           k1a + k1b * msquared,
                           k2a + k2b * msquared + k2c * mfour,
                           k3a + k3b * msquared + k3c * mfour + k3d * msix])
        K0to3 *= qpower
        K0to3 += coeffs
    K0to3 *= q
    K0to3 *= _SQRT2PI
    K0to3 /= np.array([z, 6 * zfour, 72 * z ** 7, 6480 * z ** 10])
    q = np.exp(-_PI_SQUARED / 2 / zsquared)
    ks = np.arange(maxk, 0, -1)
    ksquared = ks ** 2
    sqrt3z = _SQRT3 * z
    kspi = np.pi * ks
    qpwers = q ** ksquared
    k2extra = np.sum(ksquared * qpwers)
    k2extra *= _PI_SQUARED * _SQRT2PI / (-36 * zthree)
    K0to3[2] += k2extra
    k3extra = np.sum((sqrt3z + kspi) * (sqrt3z - kspi) * ksquared * qpwers)
    k3extra *= _PI_SQUARED * _SQRT2PI / (216 * zsix)
    K0to3[3] += k3extra
    powers_of_n = np.power(n * 1.0, np.arange(len(K0to3)) / 2.0)
    K0to3 /= powers_of_n
    return float(sum(K0to3))


def kstwo_sf(d: float, n: int) -> float:
    """``scipy.stats.kstwo.sf(d, n)``: P(D_n >= d) for the two-sided one-sample KS statistic."""
    if math.isnan(n) or n < 1 or int(n) != n or math.isnan(d):
        return float("nan")
    n = int(n)
    x = float(d)
    if x >= 1.0:
        return 0.0
    if x <= 0.5 / n:  # below the support (scipy's rv_continuous answers 1 there)
        return 1.0
    t = n * x
    if t <= 1.0:  # Ruben-Gambino: 1/2n <= x <= 1/n
        if n <= 140:
            prob = float(np.prod(np.arange(1, n + 1) * (1.0 / n) * (2 * t - 1)))
        else:
            prob = math.exp(_log_nfactorial_div_n_pow_n(n) + n * math.log(2 * t - 1))
        return _clip(1.0 - prob)
    if t >= n - 1:  # Ruben-Gambino
        return _clip(2 * (1.0 - x) ** n)
    if x >= 0.5:
        return _clip(2 * smirnov(n, x))
    nxsquared = t * x
    if n <= 140:
        if nxsquared <= 0.754693:
            return _clip(1.0 - _kolmogn_dmtw(n, x))
        if nxsquared <= 4:
            return _clip(1.0 - _kolmogn_pomeranz(n, x))
        return _clip(2 * smirnov(n, x))
    if nxsquared >= 370.0:
        return 0.0
    if nxsquared >= 2.2:
        return _clip(2 * smirnov(n, x))
    if nxsquared >= 18.0:
        cdf = 1.0
    elif n <= 100000 and n * x ** 1.5 <= 1.4:
        cdf = _kolmogn_dmtw(n, x)
    else:
        cdf = _clip(_kolmogn_pelz_good(n, x))
    return _clip(1.0 - cdf)
