from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularRedocView, SpectacularSwaggerView

from leadlex import views as leadlex_views

app_urls = [
    path("", include("leadlex.urls")),
    path("", include("contacts.urls")),
    path("", include("exports.leadlex.urls")),
    path("", include("exports.close.urls")),
    path("", include("imports.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("v1/openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),  # JSON, as the name says
    path("v1/docs/", SpectacularSwaggerView.as_view(url_name="openapi"), name="api-docs"),
    # The docs pages' assets come from drf-spectacular-sidecar under /static/ (no CDN); see templates/api/.
    path(
        "v1/redoc/", SpectacularRedocView.as_view(url_name="openapi", template_name="api/redoc.html"), name="api-redoc"
    ),
    path("v1/", include(app_urls)),
    path("files/<str:token>", leadlex_views.file_download, name="file-download"),
    path("files/upload/<str:token>", leadlex_views.file_upload, name="file-upload"),
    # Health probes: outside /v1/ (no key, no rate limit); see README "Health checks".
    path("healthz", leadlex_views.healthz, name="healthz"),
    path("readyz", leadlex_views.readyz, name="readyz"),
]

handler400 = "leadlex.errors.handler400"
handler403 = "leadlex.errors.handler403"
handler404 = "leadlex.errors.handler404"
handler500 = "leadlex.errors.handler500"
