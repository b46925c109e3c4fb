"""The portal's navigation: every capability's page, in the order a marketer works through them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Capability:
    slug: str
    title: str
    url_name: str
    summary: str
    admin_only: bool = False


CAPABILITIES: tuple[Capability, ...] = (
    Capability("overview", "Overview", "dashboard:overview", "Customers, revenue and repeat purchase at a glance."),
    Capability("customers", "Customers", "customers:list", "Search customers and open their 360° view."),
    Capability(
        "segments",
        "Segments",
        "segmentation:overview",
        "RFM segments and K-Means clusters with names a marketer understands.",
    ),
    Capability(
        "cltv",
        "Lifetime value",
        "cltv:overview",
        "BG/NBD + Gamma-Gamma CLTV with uncertainty, validated on a holdout.",
    ),
    Capability(
        "churn",
        "Churn risk",
        "churn:overview",
        "Who is about to leave, why (SHAP), and what would keep them.",
    ),
    Capability(
        "lookalikes",
        "Lookalikes",
        "embeddings:overview",
        "Customers who buy like a given customer or audience; lookalike audiences.",
    ),
    Capability(
        "uplift",
        "Uplift",
        "uplift:overview",
        "Whom an offer would actually change: causal forest, Qini and AUUC.",
    ),
    Capability("audiences", "Audiences", "customers:audiences", "Saved customer selections for campaigns."),
    Capability("campaigns", "Campaigns", "campaigns:list", "Rank, budget, message and export target lists."),
    Capability("live", "Live feed", "streaming:live", "At-risk customers as events stream in."),
    Capability("imports", "Imports", "customers:imports", "Transaction imports with their error reports."),
    Capability("jobs", "Jobs", "mlops:jobs", "Background work (training, imports) with live progress."),
    Capability("models", "Models", "mlops:models", "Every trained model version; promotion and rollback."),
    Capability("users", "Users", "accounts:users", "Portal users and their roles.", admin_only=True),
    Capability("api-keys", "API keys", "accounts:api-keys", "Keys for CRM integrations.", admin_only=True),
    Capability("audit", "Audit log", "audit:log", "Sign-ins, changes, training, approvals, erasures.", admin_only=True),
    Capability("limitations", "Limitations", "privacy:limitations", "What the models can and cannot tell you."),
)
