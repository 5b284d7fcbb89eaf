from django.urls import path

from leadlex import api

app_name = "leadlex"
urlpatterns: list = [
    path("webhooks", api.WebhookEndpointListCreateAPI.as_view(), name="webhooks"),
    path("webhooks/<str:endpoint_id>", api.WebhookEndpointDetailAPI.as_view(), name="webhook-detail"),
]
