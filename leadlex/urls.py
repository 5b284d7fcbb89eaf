from django.urls import re_path

from leadlex import api

app_name = "leadlex"
# The trailing slash is optional: clients of both dialects are used to either.
urlpatterns: list = [
    re_path(r"^webhooks/?$", api.WebhookEndpointListCreateAPI.as_view(), name="webhooks"),
    re_path(r"^webhooks/(?P<endpoint_id>[^/]+)/?$", api.WebhookEndpointDetailAPI.as_view(), name="webhook-detail"),
]
