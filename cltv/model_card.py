"""What a CLTV version says in its model card."""

from __future__ import annotations

from typing import Any

from rfm_portal.mlops.model_cards import CardSections
from rfm_portal.mlops.models import ModelVersion


def _param_lines(fit: dict[str, Any]) -> str:
    ses = fit.get("standard_errors") or {}
    rows = []
    for name, value in (fit.get("params") or {}).items():
        se = ses.get(name)
        interval = f", 95 % interval {value - 1.96 * se:.4g} to {value + 1.96 * se:.4g}" if se is not None else ""
        rows.append(f"  - `{name}` = {value:.4g}{interval}")
    return "\n".join(rows)


def card_sections(mv: ModelVersion) -> CardSections:
    m, p = mv.metrics, mv.params
    gg = m.get("gamma_gamma_fit") or {}
    corr = (gg.get("extra") or {}).get("frequency_monetary_corr")
    boot = (m.get("group_performance") or {}).get("overall") or {}
    boot_text = (f" (bootstrap 95 % interval {boot['ci_low']:.1%}–{boot['ci_high']:.1%} over customers)"
                 if boot.get("ci_low") is not None else "")
    comparison = "\n".join(
        f"| {r['label']} | {r.get('mae', 0) or 0:.3f} | {r.get('rmse', 0) or 0:.3f} | "
        f"{(r.get('aggregate_error') or 0):+.1%} |" for r in m.get("comparison", []) if not r.get("error"))
    return CardSections(
        title=f"CLTV model — {m.get('chosen_label', '')} + Gamma-Gamma",
        intended_use="Estimate each customer's expected purchases, P(alive) and customer lifetime value over "
        f"{p.get('clv_horizon_days', 365):g} days (discounted at {p.get('annual_discount_rate', 0.1):.0%} a year, "
        f"margin {p.get('margin', 1.0):g}), with P10/P50/P90 from posterior-predictive draws, to rank customers by "
        "value, size budgets per segment and weigh campaign profit.",
        intended_users="Marketing analysts and campaign planners in the portal; CRM systems through "
        "`POST /predict_cltv`; the campaign planner's profit calculation.",
        out_of_scope="Accounting or revenue forecasts for the books (it models repeat buying, not new customers, "
        "prices or seasonality); credit or pricing decisions about individuals; contractual (subscription) "
        "businesses; customers with no purchase yet.",
        training_data=f"{m.get('n_customers', 0):,} customers with a purchase before "
        f"{m.get('observation_end_exclusive')}; calibration period before {m.get('calibration_end_exclusive')}, "
        "holdout period from then to the end (for validation); the chosen model is refit on the whole period. "
        "Transactions are aggregated per customer and day; returns are netted per day.",
        features="Per customer: frequency (repeat purchase days), recency (time of the last repeat purchase), T "
        "(age since the first purchase) and the mean spend of repeat purchases — the sufficient statistics of the "
        "BG/NBD / Pareto-NBD / MBG/NBD and Gamma-Gamma models. No demographics, no country.",
        metrics=f"Holdout error of the chosen model (predicted vs actual purchases per customer in the holdout): "
        f"MAE {m.get('holdout_mae', 0):.3f}, RMSE {m.get('holdout_rmse', 0):.3f}, aggregate "
        f"{m.get('holdout_aggregate_error', 0):+.1%}{boot_text}.\n\n"
        f"Fitted parameters (whole period; analytic 95 % intervals from the standard errors):\n\n"
        f"- {m.get('chosen_label', '')}:\n{_param_lines(m.get('transaction_fit') or {})}\n"
        f"- Gamma-Gamma:\n{_param_lines(gg)}\n\n"
        + (f"Frequency–spend correlation {corr:.3f} (Gamma-Gamma assumes independence).\n\n"
           if corr is not None else "")
        + f"Total CLV of scored customers: {m.get('total_clv', 0):,.0f}.",
        validation=f"Time split: each candidate model is fitted on the calibration period and predicts each "
        f"customer's purchases in the holdout period; the lowest holdout {str(m.get('selection_metric', '')).upper()}"
        " is chosen and refit on the whole period. The models reproduce the published BG/NBD and Gamma-Gamma fits "
        "on CDNOW (tested).\n\n| Model | MAE | RMSE | Aggregate error |\n|---|---|---|---|\n" + comparison,
        limitations="Customers are assumed to buy and drop out independently at steady rates: no seasonality, no "
        "effect of campaigns, no new customers. Spend is assumed independent of frequency. Customers with one "
        "purchase get wide intervals. Returns are netted per day. Groups with few holdout purchases are too few "
        "to judge.",
        ethics="No sensitive attribute is an input. A low CLV is a forecast of buying, not of a person's worth: "
        "don't use it to worsen service or prices. Budgets that follow CLV alone concentrate contact on the "
        "same customers (contact fatigue); campaigns need an admin's approval.",
    )
