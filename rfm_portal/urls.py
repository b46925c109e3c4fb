from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from rfm_portal.dashboard.vendor import favicon, redoc_bundle

urlpatterns = [
    path("accounts/login/", login_not_required(auth_views.LoginView.as_view()), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("django-admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    # ReDoc's bundle without its CDN logo (SPECTACULAR_SETTINGS["REDOC_DIST"] points here)
    path("docs-assets/redoc/bundles/redoc.standalone.js", redoc_bundle, name="redoc-bundle"),
    # browsers ask for /favicon.ico on pages without a <link rel="icon"> (CSV downloads, raw JSON)
    path("favicon.ico", favicon),
    path("", include("rfm_portal.accounts.urls")),
    path("", include("rfm_portal.mlops.urls")),
    path("", include("rfm_portal.customers.urls")),
    path("", include("segmentation.urls")),
    path("", include("cltv.urls")),
    path("", include("churn.urls")),
    path("", include("uplift.urls")),
    path("", include("embeddings.urls")),
    path("", include("streaming.urls")),
    path("", include("campaigns.urls")),
    path("", include("rfm_portal.audit.urls")),
    path("", include("rfm_portal.privacy.urls")),
    path("", include("rfm_portal.dashboard.urls")),
]

# Database unavailable (pool exhausted, connection refused) outside a view: 503 + Retry-After, not 500.
handler500 = "rfm_portal.serving.middleware.server_error"
