"""Generated tables shaped like a user's own: an ID column, dates, categories, missing values, imbalance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def churn_table(n: int = 600, positive_rate: float = 0.15, seed: int = 0) -> pd.DataFrame:
    """Customers with a unique `customer_id`, a `signup_date`, a `plan`, gaps in `monthly_fee`, and `churn` yes/no."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, n).astype(float)
    plan = rng.choice(["basic", "plus", "premium"], n, p=[0.5, 0.3, 0.2])
    fee = np.round(rng.normal(50, 15, n), 2)
    risk = -0.05 * tenure + (plan == "basic") * 1.0 + rng.normal(0, 1, n)
    churn = np.where(risk >= np.quantile(risk, 1 - positive_rate), "yes", "no")
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{100000 + i}" for i in rng.permutation(n)],
            "signup_date": (pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1500, n), unit="D")).strftime(
                "%Y-%m-%d"
            ),
            "plan": plan,
            "tenure": tenure,
            "monthly_fee": fee,
            "region": "north",
            "churn": churn,
        }
    )
    frame.loc[rng.random(n) < 0.1, "monthly_fee"] = np.nan
    frame.loc[rng.random(n) < 0.05, "plan"] = None
    return frame


def regression_table(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """A price from a size and a district, with a few gaps."""
    rng = np.random.default_rng(seed)
    size = rng.uniform(30, 200, n)
    district = rng.choice(["a", "b", "c"], n)
    price = 3.0 * size + np.select([district == "a", district == "b"], [100.0, 40.0], 0.0) + rng.normal(0, 20, n)
    frame = pd.DataFrame({"size": size, "district": district, "price": price})
    frame.loc[rng.random(n) < 0.05, "size"] = np.nan
    return frame


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path
