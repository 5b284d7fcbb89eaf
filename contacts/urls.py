"""/v1 routes of the contacts app. Ids are matched as UUIDs so that the
``contacts/export`` and ``contacts/exports/…`` routes of the exports app, mounted
after this module, are never captured as a contact id."""

from django.urls import path

from contacts import api

app_name = "contacts"
urlpatterns = [
    path("contacts", api.ContactCollectionAPI.as_view(), name="contacts"),
    path("contacts/merge", api.ContactMergeAPI.as_view(), name="contacts-merge"),
    path("contacts/<uuid:contact_id>", api.ContactDetailAPI.as_view(), name="contact"),
    path("contacts/<uuid:contact_id>/comet_tokens", api.CometTokenCollectionAPI.as_view(), name="contact-comet-tokens"),
    path("lists", api.ListCollectionAPI.as_view(), name="lists"),
    path("lists/<uuid:list_id>/contacts", api.ListMembershipAPI.as_view(), name="list-contacts"),
    path("companies", api.CompanyCollectionAPI.as_view(), name="companies"),
    path("companies/<uuid:company_id>", api.CompanyDetailAPI.as_view(), name="company"),
    path("opportunities", api.OpportunityCollectionAPI.as_view(), name="opportunities"),
    path("opportunities/<uuid:opportunity_id>", api.OpportunityDetailAPI.as_view(), name="opportunity"),
    path("activities", api.ActivityCollectionAPI.as_view(), name="activities"),
    path("activities/<uuid:activity_id>", api.ActivityDetailAPI.as_view(), name="activity"),
]
