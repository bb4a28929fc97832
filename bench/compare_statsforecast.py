"""The refuse forecast's backtest in Nixtla's statsforecast, for the choice of library.

Runs in its own virtual environment, not onemap's: statsforecast 2.1 pins pandas < 3,
onemap's has pandas 3. It needs only psycopg, pandas and statsforecast:

    python3.12 -m venv var/bench/sf-venv
    var/bench/sf-venv/bin/pip install statsforecast "psycopg[binary]"
    var/bench/sf-venv/bin/python bench/compare_statsforecast.py --pg-host /path/to/var/run

The same series as ``bench/bench_refuse_forecast.py`` at the refuse-building level (each
refuse building's 21:00 readings, the buildings whose readings are all zero left out:
their MASE is undefined), the same four cut-offs a week apart (``cross_validation(h=14,
n_windows=4, step_size=7)``) and the same errors: MASE against the in-sample weekly
seasonal naive up to each cut-off, MAPE, each averaged over the cut-offs then over the
series. No holiday adjustment. One model at a time, ``n_jobs=1``; timed: the cross
validation, then a 14-day forecast with 80 % and 95 % intervals.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
import psycopg


def readings(conninfo: str) -> pd.DataFrame:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT r.facility_id, (r.measured_at AT TIME ZONE 'Asia/Shanghai')::date, "
            "r.load_t::float8 FROM onemap.refuse_load_reading r "
            "JOIN onemap.refuse_facility f ON f.id = r.facility_id "
            "WHERE f.kind = 'refuse_building' AND f.status = 'in_service' AND "
            "(r.measured_at AT TIME ZONE 'Asia/Shanghai')::time = time '21:00' "
            "ORDER BY 1, 2").fetchall()
    df = pd.DataFrame(rows, columns=["unique_id", "ds", "y"])
    df["ds"] = pd.to_datetime(df["ds"])
    return df[df.groupby("unique_id")["y"].transform("max") > 0]


def errors(df: pd.DataFrame, cv: pd.DataFrame, name: str) -> tuple[float, float]:
    mase, mape = [], []
    for (uid, cut), g in cv.groupby(["unique_id", "cutoff"]):
        train = df[(df["unique_id"] == uid) & (df["ds"] <= cut)]["y"].to_numpy()
        scale = np.mean(np.abs(train[7:] - train[:-7]))
        err = np.abs(g["y"].to_numpy() - g[name].to_numpy())
        mase.append(err.mean() / scale)
        mape.append(100 * np.mean(err / g["y"].to_numpy()))
    return float(np.mean(mase)), float(np.mean(mape))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg-host", default="var/run")
    parser.add_argument("--database", default="onemap")
    parser.add_argument("--models", default="SeasonalNaive,AutoETS,AutoTheta,MSTL,AutoARIMA")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    from statsforecast import StatsForecast
    from statsforecast.models import MSTL, AutoARIMA, AutoETS, AutoTheta, SeasonalNaive

    known = {"SeasonalNaive": lambda: SeasonalNaive(7),
             "AutoETS": lambda: AutoETS(season_length=7),
             "AutoTheta": lambda: AutoTheta(season_length=7),
             "MSTL": lambda: MSTL(season_length=7, trend_forecaster=AutoETS(model="ZZN")),
             "AutoARIMA": lambda: AutoARIMA(season_length=7)}
    df = readings(f"host={args.pg_host} port=54787 user=onemap dbname={args.database}")
    print(f"{df['unique_id'].nunique()} series, {df['ds'].min().date()} to "
          f"{df['ds'].max().date()}\n")
    print("| model | cross-validation s | ms per fit | forecast s | MASE | MAPE % |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.models.split(","):
        sf = StatsForecast(models=[known[name]()], freq="D", n_jobs=1)
        t = time.perf_counter()
        cv = sf.cross_validation(df=df, h=14, n_windows=4, step_size=7)
        cv_s = time.perf_counter() - t
        t = time.perf_counter()
        sf.forecast(df=df, h=14, level=[80, 95])
        fc_s = time.perf_counter() - t
        mase, mape = errors(df, cv, name)
        fits = 4 * df["unique_id"].nunique()
        print(f"| {name} | {cv_s:.1f} | {1000 * cv_s / fits:.0f} | {fc_s:.2f} | {mase:.4f} | "
              f"{mape:.2f} |", flush=True)


if __name__ == "__main__":
    main()
