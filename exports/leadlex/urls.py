from django.urls import path

from exports.leadlex import api

app_name = "exports"
urlpatterns: list = [
    path("contacts/export", api.ContactExportStreamApi.as_view(), name="contacts-export"),
    path("contacts/exports", api.ContactExportCreateApi.as_view(), name="contacts-exports"),
    path("contacts/exports/<str:export_id>", api.ContactExportDetailApi.as_view(), name="contacts-export-detail"),
]
