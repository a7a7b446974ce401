"""Simulators that made the bundled example data, from documented true values and fixed seeds.

    python -m hbm.simulate schools data/schools     # scores.csv + true_values.json
    python -m hbm.simulate grouped data/grouped     # grouped.csv + true_values.json
    python -m hbm.simulate retail_demand data/retail_demand   # sales.csv + true_values.json

Running them again reproduces the bundled files byte for byte (tests/test_simulate.py checks this).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from hbm.io import write_json, write_text

SCHOOLS_TRUTH = {
    "seed": 20261121,
    "schools": 12,
    "students_min": 15,
    "students_max": 40,
    "mu_overall": 68.0,  # mean of the school means (score points)
    "tau": 6.0,  # sd of the school means
    "sigma_sq_alpha": 5.0,  # sigma_j^2 ~ InvGamma(alpha, beta): within-school variance
    "sigma_sq_beta": 400.0,
}

GROUPED_TRUTH = {"seed": 20261122, "groups": ["a", "b", "c"], "sizes": [20, 40, 60], "means": [3.0, 5.0, 7.0],
                 "sds": [1.0, 2.0, 3.0]}

RETAIL_TRUTH = {
    "seed": 20261123,
    "start": "2024-01-01",  # a Monday; week t is start + 7t days
    "weeks": 104,
    "regions": 3,  # store s is in region s % regions
    "stores": 8,
    "categories": 3,  # product p is in category p % categories
    "products": 30,
    "base_units": 4.0,  # base = log(base_units): the mean of one store-product-week at zero effects
    "tau_region": 0.3,  # sd of the region effects (log scale)
    "tau_store": 0.2,  # sd of the store effects around their region's
    "tau_category": 0.4,  # sd of the category effects
    "tau_product": 0.5,  # sd of the product intercepts around their category's
    "trend_mu": 0.10,  # mean of the product trends (change in log mean per year)
    "trend_tau": 0.15,  # sd of the product trends
    "period": 52.18,  # weeks per year: trend time unit and seasonal period
    "fourier_order": 2,  # features [sin1, cos1, sin2, cos2]
    "season_mu": [0.30, 0.15, -0.05, 0.08],  # chain mean of the store seasonal coefficients
    "season_tau": 0.08,  # sd of the store seasonal coefficients around season_mu
    "ref_price_median": 4.0,  # ref_price = round(exp(N(log(ref_price_median), ref_price_log_sd)), 2)
    "ref_price_log_sd": 0.5,
    "price_jump_prob": 0.08,  # weekly chance that a product's log price ratio jumps to a new value
    "price_jump_sd": 0.10,  # new log price ratio ~ N(0, price_jump_sd)
    "promo_prob": 0.12,  # promo[p, t] ~ Bernoulli(promo_prob)
    "by_store": True,  # each store sets its own prices and promotions, as real chains do (False: chain-wide)
    "elasticity": -1.4,  # coefficient of log(price / ref_price)
    "promo_lift": 0.35,  # coefficient of the promotion flag
    "alpha": 10.0,  # negative binomial dispersion: variance = lambda + lambda^2 / alpha
}

RETAIL_NOTES = ("The bottom model (product x store) is this simulator's model: its elasticity, promotion, trend, "
                "season and sds are these values. At the product level (units summed over stores) trend_mu, "
                "trend_tau and tau (product intercept sd within category) equal them; with by_store the stores "
                "summed charge different prices and promote at different times, so the level's elasticity and "
                "lift describe a price index of a mix and need not equal these values (with by_store false they "
                "do); the NB dispersion and intercept location do not (sums over stores).")


def schools(truth: dict = SCHOOLS_TRUTH) -> tuple[pd.DataFrame, dict]:
    """Test scores: y_ij ~ N(mu_j, sigma_j^2), mu_j ~ N(mu_overall, tau^2), sigma_j^2 ~ InvGamma(alpha, beta)."""
    rng = np.random.default_rng(truth["seed"])
    J = truth["schools"]
    names = [f"school_{j + 1:02d}" for j in range(J)]
    n = rng.integers(truth["students_min"], truth["students_max"] + 1, size=J)
    mu = rng.normal(truth["mu_overall"], truth["tau"], size=J)
    sigma_sq = truth["sigma_sq_beta"] / rng.gamma(truth["sigma_sq_alpha"], 1.0, size=J)
    sigma = np.sqrt(sigma_sq)
    school = np.repeat(np.arange(J), n)
    score = np.round(rng.normal(mu[school], sigma[school]), 1)
    df = pd.DataFrame({"student": np.arange(1, school.size + 1), "school": np.asarray(names)[school], "score": score})
    values = {**truth, "school_names": names, "students": n.tolist(), "school_means": np.round(mu, 4).tolist(),
              "school_sds": np.round(sigma, 4).tolist()}
    return df, values


def grouped(truth: dict = GROUPED_TRUTH) -> tuple[pd.DataFrame, dict]:
    """Three groups of sizes 20/40/60 with means 3/5/7 and sds 1/2/3."""
    rng = np.random.default_rng(truth["seed"])
    parts = [pd.DataFrame({"group": g, "y": np.round(rng.normal(m, s, size=n), 4)})
             for g, n, m, s in zip(truth["groups"], truth["sizes"], truth["means"], truth["sds"])]
    return pd.concat(parts, ignore_index=True), dict(truth)


def retail(truth: dict = RETAIL_TRUTH) -> tuple[pd.DataFrame, dict]:
    """Weekly unit sales of products in stores, with trend, yearly season, price and promotion.

    Sizes: W = weeks, R = regions, S = stores, C = categories, P = products; t = 0..W-1 (week start + 7t days),
    store s (store_01..) is in region s % R (region_1..), product p (prod_01..) in category p % C (cat_1..).
    Every region needs a store and every category a product (S >= R, P >= C). All random numbers come from one
    ``np.random.default_rng(seed)``, drawn in this order (z ~ N(0, 1) throughout):

    1. region_effect[r] ~ N(0, tau_region), r = 0..R-1
    2. store_effect[s] = region_effect[s % R] + tau_store * z_s, s = 0..S-1
    3. category_effect[c] ~ N(0, tau_category), c = 0..C-1
    4. product_intercept[p] = category_effect[p % C] + tau_product * z_p, p = 0..P-1
    5. trend[p] ~ N(trend_mu, trend_tau)                                  (change in log mean per year)
    6. season[s, f] = season_mu[f] + season_tau * z_sf, shape (S, 2 * fourier_order)
    7. ref_price[p] = max(round(exp(N(log(ref_price_median), ref_price_log_sd)), 2), 0.01)
    8. price jumps, shape (P, W-1) for t = 1..W-1 (with ``by_store``: (P, S, W-1), each store its own):
       jump[p, t] = U(0, 1) < price_jump_prob (all uniforms first),
       then new[p, t] ~ N(0, price_jump_sd) (all drawn, used where jump); ratio[p, 0] = 0 and
       ratio[p, t] = new[p, t] if jump[p, t] else ratio[p, t-1];
       price[p, t] = max(round(ref_price[p] * exp(ratio[p, t]), 2), 0.01)     (without by_store: the same in every store)
    9. promo[p, t] = U(0, 1) < promo_prob, shape (P, W) (by_store: (P, S, W)), independent of price
    10. units[t, s, p] ~ NegBin(mean lambda[t, s, p], dispersion alpha), shape (W, S, P):
        numpy ``rng.negative_binomial(n=alpha, p=alpha / (alpha + lambda))``, variance lambda + lambda^2 / alpha,

    where, with u_t = (t - (W - 1) / 2) / period and F_t = [sin(2 pi k t / period), cos(2 pi k t / period)
    for k = 1..fourier_order] (order sin1, cos1, sin2, cos2),

        log lambda[t, s, p] = log(base_units) + product_intercept[p] + trend[p] * u_t + store_effect[s]
                              + season[s, :] . F_t + elasticity * log(price[p, (s,) t] / ref_price[p])
                              + promo_lift * promo[p, (s,) t]

    (the rounded price enters the mean). Rows: one per (week, store, product), sorted by week, store, product;
    columns week (YYYY-MM-DD), region, store, category, product, price, promo (0/1), units. The returned truth is
    the inputs plus the drawn effects (rounded to 6 decimals) and the names; see ``RETAIL_NOTES`` for which of
    them a product-level model (units summed over stores) recovers directly.
    """
    rng = np.random.default_rng(truth["seed"])
    W, R, S, C, P = (int(truth[k]) for k in ("weeks", "regions", "stores", "categories", "products"))
    if not (W >= 1 and 1 <= R <= S and 1 <= C <= P):
        raise ValueError(f"need weeks >= 1, 1 <= regions <= stores and 1 <= categories <= products; got "
                         f"W={W}, R={R}, S={S}, C={C}, P={P}")
    K = int(truth["fourier_order"])
    season_mu = np.asarray(truth["season_mu"], dtype=float)
    if season_mu.shape != (2 * K,):
        raise ValueError(f"season_mu needs 2 * fourier_order = {2 * K} values, got {season_mu.size}")
    region_names = [f"region_{r + 1}" for r in range(R)]
    store_names = [f"store_{s + 1:02d}" for s in range(S)]
    category_names = [f"cat_{c + 1}" for c in range(C)]
    product_names = [f"prod_{p + 1:02d}" for p in range(P)]
    store_region, product_category = np.arange(S) % R, np.arange(P) % C

    region_effect = rng.normal(0.0, truth["tau_region"], size=R)
    store_effect = region_effect[store_region] + truth["tau_store"] * rng.standard_normal(S)
    category_effect = rng.normal(0.0, truth["tau_category"], size=C)
    product_intercept = category_effect[product_category] + truth["tau_product"] * rng.standard_normal(P)
    trend = rng.normal(truth["trend_mu"], truth["trend_tau"], size=P)
    season = season_mu + truth["season_tau"] * rng.standard_normal((S, 2 * K))
    ref_price = np.maximum(np.round(np.exp(rng.normal(np.log(truth["ref_price_median"]),
                                                      truth["ref_price_log_sd"], size=P)), 2), 0.01)
    shape = (P, S) if truth.get("by_store") else (P, 1)  # prices and promotions per store, or chain-wide
    jump = rng.random((*shape, W - 1)) < truth["price_jump_prob"]
    new = rng.normal(0.0, truth["price_jump_sd"], size=(*shape, W - 1))
    ratio = np.zeros((*shape, W))
    for t in range(1, W):
        ratio[..., t] = np.where(jump[..., t - 1], new[..., t - 1], ratio[..., t - 1])
    price = np.maximum(np.round(ref_price[:, None, None] * np.exp(ratio), 2), 0.01)  # (P, S or 1, W)
    promo = (rng.random((*shape, W)) < truth["promo_prob"]).astype(int)  # (P, S or 1, W)
    price, promo = (np.broadcast_to(a, (P, S, W)) for a in (price, promo))

    t = np.arange(W)
    u = (t - (W - 1) / 2) / truth["period"]
    angle = 2 * np.pi * t[:, None] * np.arange(1, K + 1)[None, :] / truth["period"]  # (W, K)
    F = np.stack([np.sin(angle), np.cos(angle)], axis=2).reshape(W, 2 * K)  # sin1, cos1, sin2, cos2
    log_lam = (np.log(truth["base_units"])
               + product_intercept[None, None, :] + trend[None, None, :] * u[:, None, None]
               + store_effect[None, :, None] + (F @ season.T)[:, :, None]
               + truth["elasticity"] * np.log(price / ref_price[:, None, None]).transpose(2, 1, 0)
               + truth["promo_lift"] * promo.transpose(2, 1, 0))  # (W, S, P)
    lam = np.exp(log_lam)
    alpha = truth["alpha"]
    units = rng.negative_binomial(n=alpha, p=alpha / (alpha + lam))

    weeks = pd.date_range(truth["start"], periods=W, freq="7D").strftime("%Y-%m-%d").to_numpy()
    ti, si, pi = (a.ravel() for a in np.meshgrid(t, np.arange(S), np.arange(P), indexing="ij"))
    df = pd.DataFrame({
        "week": weeks[ti],
        "region": np.asarray(region_names)[store_region[si]],
        "store": np.asarray(store_names)[si],
        "category": np.asarray(category_names)[product_category[pi]],
        "product": np.asarray(product_names)[pi],
        "price": price[pi, si, ti],
        "promo": promo[pi, si, ti],
        "units": units.ravel().astype(int),
    })

    def r6(x):
        return np.round(x, 6).tolist()

    values = {**truth, "region_names": region_names, "store_names": store_names,
              "store_region": [region_names[r] for r in store_region], "category_names": category_names,
              "product_names": product_names, "product_category": [category_names[c] for c in product_category],
              "region_effect": r6(region_effect), "store_effect": r6(store_effect),
              "category_effect": r6(category_effect), "product_intercept": r6(product_intercept),
              "trend": r6(trend), "season": r6(season), "ref_price": ref_price.tolist(), "notes": RETAIL_NOTES}
    return df, values


SIMULATORS = {"schools": (schools, "scores.csv"), "grouped": (grouped, "grouped.csv"),
              "retail_demand": (retail, "sales.csv")}


def write(name: str, folder) -> tuple[Path, Path]:
    simulate, filename = SIMULATORS[name]
    df, truth = simulate()
    folder = Path(folder)
    data_path, truth_path = folder / filename, folder / "true_values.json"
    write_text(df.to_csv(index=False, lineterminator="\n"), data_path)
    write_json(truth, truth_path)
    return data_path, truth_path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", choices=sorted(SIMULATORS))
    parser.add_argument("folder")
    args = parser.parse_args(argv)
    for p in write(args.name, args.folder):
        print(p)


if __name__ == "__main__":
    main()


