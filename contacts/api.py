"""The contacts API: thin views that parse with a serializer, call one service or
selector, and shape ``{"data": ...}``. Lists are cursor-paginated."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from contacts import selectors, services
from contacts.pagination import Page, next_link, parse_limit
from contacts.serializers import (
    ActivitySerializer,
    CometTokenSerializer,
    CompanySerializer,
    ContactListSerializer,
    ContactMergeSerializer,
    ContactSerializer,
    ContactWriteSerializer,
    ListMembershipResultSerializer,
    ListMembershipSerializer,
    OpportunitySerializer,
    envelope,
    page,
)
from contacts.validation import normalize_email, normalize_phone, parse_tags, parse_uuid
from leadlex.api import WorkspaceAPIView
from leadlex.errors import ValidationFailed

PAGE_PARAMETERS = [
    OpenApiParameter("cursor", str, description="next_cursor of the previous page"),
    OpenApiParameter("limit", int, description="Rows per page: default 50, at most 500"),
]


def _data(payload: Any, *, status_code: int = status.HTTP_200_OK) -> Response:
    return Response({"data": payload}, status=status_code)


def _paged(request: Request, result: Page, serializer_class: type[serializers.Serializer]) -> Response:
    response = Response({"data": serializer_class(result.rows, many=True).data, "next_cursor": result.next_cursor})
    if result.next_cursor:
        response["Link"] = next_link(
            url=request.build_absolute_uri(request.path),
            params=request.query_params.dict(),
            next_cursor=result.next_cursor,
        )
    return response


def _valid(
    serializer_class: type[serializers.Serializer], request: Request, *, partial: bool = False, **context: Any
) -> dict[str, Any]:
    serializer = serializer_class(data=request.data, partial=partial, context={"request": request, **context})
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _page_args(request: Request) -> dict[str, Any]:
    return {"cursor": request.query_params.get("cursor"), "limit": parse_limit(request.query_params.get("limit"))}


# --- contacts ------------------------------------------------------------------------------


CONTACT_FILTER_PARAMETERS = [
    OpenApiParameter("email", str, description="Exact address, case-insensitive"),
    OpenApiParameter("phone", str, description="Any notation; compared in E.164"),
    OpenApiParameter("tag", str, many=True, description="Repeatable: every tag must match"),
    OpenApiParameter("list_id", OpenApiTypes.UUID, description="Members of this list"),
    OpenApiParameter("company_id", OpenApiTypes.UUID, description="Contacts of this company"),
]


def _contact_filters(request: Request) -> selectors.ContactFilters:
    params = request.query_params
    try:
        return selectors.ContactFilters(
            email=normalize_email(params["email"]) if params.get("email") else None,
            phone=normalize_phone(params["phone"]) if params.get("phone") else None,
            tags=tuple(parse_tags(params.getlist("tag"))),
            list_id=parse_uuid(params["list_id"], what="list_id") if params.get("list_id") else None,
            company_id=parse_uuid(params["company_id"], what="company_id") if params.get("company_id") else None,
        )
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from None


class ContactCollectionAPI(WorkspaceAPIView):
    @extend_schema(
        operation_id="contacts_list",
        parameters=PAGE_PARAMETERS + CONTACT_FILTER_PARAMETERS,
        responses=page(ContactSerializer),
        summary="List contacts, oldest first by (created_at, id)",
        description="Cursor-paginated: pass `next_cursor` as `cursor` for the next page (it is also in "
        'the `Link: <…>; rel="next"` header). Filters combine: a contact must match all.',
    )
    def get(self, request: Request) -> Response:
        result = selectors.contact_page(
            workspace=self.workspace, filters=_contact_filters(request), **_page_args(request)
        )
        return _paged(request, result, ContactSerializer)

    @extend_schema(
        operation_id="contacts_create",
        request=ContactWriteSerializer,
        responses={201: envelope(ContactSerializer)},
        summary="Create a contact",
        description="Needs at least a `full_name`, an `email` or a `phone`. The email is unique in the "
        "workspace (case-insensitive); the phone is stored as E.164. Unknown fields are "
        "refused with 400, naming them.",
    )
    def post(self, request: Request) -> Response:
        data = _valid(ContactWriteSerializer, request, workspace=self.workspace)
        contact = services.contact_create(workspace=self.workspace, data=data)
        contact = selectors.contact_get(workspace=self.workspace, contact_id=contact.pk)
        return _data(ContactSerializer(contact).data, status_code=status.HTTP_201_CREATED)


class ContactDetailAPI(WorkspaceAPIView):
    @extend_schema(operation_id="contacts_retrieve", responses=envelope(ContactSerializer), summary="Get a contact")
    def get(self, request: Request, contact_id: UUID) -> Response:
        return _data(ContactSerializer(selectors.contact_get(workspace=self.workspace, contact_id=contact_id)).data)

    @extend_schema(
        operation_id="contacts_update",
        request=ContactWriteSerializer,
        responses=envelope(ContactSerializer),
        summary="Update some fields of a contact",
        description="Only the fields sent change; `lists` replaces the contact's list memberships.",
    )
    def patch(self, request: Request, contact_id: UUID) -> Response:
        contact = selectors.contact_get(workspace=self.workspace, contact_id=contact_id)
        data = _valid(ContactWriteSerializer, request, partial=True, workspace=self.workspace)
        services.contact_update(contact=contact, data=data)
        return _data(ContactSerializer(selectors.contact_get(workspace=self.workspace, contact_id=contact_id)).data)

    @extend_schema(operation_id="contacts_destroy", responses={204: None}, summary="Delete a contact")
    def delete(self, request: Request, contact_id: UUID) -> Response:
        services.contact_delete(contact=selectors.contact_get(workspace=self.workspace, contact_id=contact_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ContactMergeAPI(WorkspaceAPIView):
    @extend_schema(
        operation_id="contacts_merge",
        request=ContactMergeSerializer,
        responses={
            200: envelope(ContactSerializer),
            404: OpenApiResponse(
                description="not_found: the primary or a duplicate does not exist (details.missing_ids)."
            ),
        },
        summary="Merge duplicate contacts into a primary one (duplicates are deleted)",
        description="The primary keeps every email of the duplicates (`emails`) and their comet tokens.",
    )
    def post(self, request: Request) -> Response:
        data = _valid(ContactMergeSerializer, request)
        primary = services.contact_merge(
            workspace=self.workspace, primary_id=data["primary_id"], duplicate_ids=data["duplicate_ids"]
        )
        return _data(ContactSerializer(selectors.contact_get(workspace=self.workspace, contact_id=primary.pk)).data)


class CometTokenCollectionAPI(WorkspaceAPIView):
    @extend_schema(
        operation_id="contacts_comet_tokens_list",
        parameters=PAGE_PARAMETERS,
        responses=page(CometTokenSerializer),
        summary="A contact's comet tokens, most recent first",
    )
    def get(self, request: Request, contact_id: UUID) -> Response:
        contact = selectors.contact_get(workspace=self.workspace, contact_id=contact_id)
        return _paged(request, selectors.comet_token_page(contact=contact, **_page_args(request)), CometTokenSerializer)

    @extend_schema(
        operation_id="contacts_comet_tokens_create",
        request=CometTokenSerializer,
        responses={201: envelope(CometTokenSerializer)},
        summary="Record a comet token of a contact",
    )
    def post(self, request: Request, contact_id: UUID) -> Response:
        contact = selectors.contact_get(workspace=self.workspace, contact_id=contact_id)
        data = _valid(CometTokenSerializer, request)
        token = services.comet_token_record(contact=contact, token=data["token"], seen_at=data.get("seen_at"))
        return _data(CometTokenSerializer(token).data, status_code=status.HTTP_201_CREATED)


# --- lists --------------------------------------------------------------------------------


class ListCollectionAPI(WorkspaceAPIView):
    @extend_schema(
        operation_id="lists_list",
        parameters=PAGE_PARAMETERS,
        responses=page(ContactListSerializer),
        summary="List contact lists",
    )
    def get(self, request: Request) -> Response:
        return _paged(
            request, selectors.list_page(workspace=self.workspace, **_page_args(request)), ContactListSerializer
        )

    @extend_schema(
        operation_id="lists_create",
        request=ContactListSerializer,
        responses={201: envelope(ContactListSerializer)},
        summary="Create a contact list",
    )
    def post(self, request: Request) -> Response:
        data = _valid(ContactListSerializer, request)
        created = services.list_create(workspace=self.workspace, name=data["name"])
        return _data(
            ContactListSerializer(selectors.list_get(workspace=self.workspace, list_id=created.pk)).data,
            status_code=status.HTTP_201_CREATED,
        )


class ListMembershipAPI(WorkspaceAPIView):
    @extend_schema(
        operation_id="lists_contacts_add",
        request=ListMembershipSerializer,
        responses=envelope(ListMembershipResultSerializer),
        summary="Add contacts to a list (all ids must exist, else nothing is written)",
    )
    def post(self, request: Request, list_id: UUID) -> Response:
        contact_list = selectors.list_get(workspace=self.workspace, list_id=list_id)
        data = _valid(ListMembershipSerializer, request)
        changed = services.list_add_contacts(contact_list=contact_list, contact_ids=data["contact_ids"])
        return _data({"list_id": str(contact_list.pk), "changed": changed})

    @extend_schema(
        operation_id="lists_contacts_remove",
        request=ListMembershipSerializer,
        responses={200: envelope(ListMembershipResultSerializer)},
        summary="Remove contacts from a list",
        description='A DELETE with a JSON body, as for adding: `{"contact_ids": [...]}`. Answers 200 '
        "with how many memberships were removed; ids not in the list are left alone.",
    )
    def delete(self, request: Request, list_id: UUID) -> Response:
        contact_list = selectors.list_get(workspace=self.workspace, list_id=list_id)
        data = _valid(ListMembershipSerializer, request)
        changed = services.list_remove_contacts(contact_list=contact_list, contact_ids=data["contact_ids"])
        return _data({"list_id": str(contact_list.pk), "changed": changed})


# --- companies, opportunities, activities -----------------------------------------------------


class CompanyCollectionAPI(WorkspaceAPIView):
    @extend_schema(
        operation_id="companies_list",
        parameters=PAGE_PARAMETERS,
        responses=page(CompanySerializer),
        summary="List companies (Close leads)",
    )
    def get(self, request: Request) -> Response:
        return _paged(
            request, selectors.company_page(workspace=self.workspace, **_page_args(request)), CompanySerializer
        )

    @extend_schema(
        operation_id="companies_create",
        request=CompanySerializer,
        responses={201: envelope(CompanySerializer)},
        summary="Create a company",
    )
    def post(self, request: Request) -> Response:
        company = services.company_create(workspace=self.workspace, data=_valid(CompanySerializer, request))
        return _data(CompanySerializer(company).data, status_code=status.HTTP_201_CREATED)


class CompanyDetailAPI(WorkspaceAPIView):
    @extend_schema(operation_id="companies_retrieve", responses=envelope(CompanySerializer), summary="Get a company")
    def get(self, request: Request, company_id: UUID) -> Response:
        return _data(CompanySerializer(selectors.company_get(workspace=self.workspace, company_id=company_id)).data)

    @extend_schema(
        operation_id="companies_update",
        request=CompanySerializer,
        responses=envelope(CompanySerializer),
        summary="Update some fields of a company",
    )
    def patch(self, request: Request, company_id: UUID) -> Response:
        company = selectors.company_get(workspace=self.workspace, company_id=company_id)
        company = services.company_update(company=company, data=_valid(CompanySerializer, request, partial=True))
        return _data(CompanySerializer(company).data)

    @extend_schema(operation_id="companies_destroy", responses={204: None}, summary="Delete a company")
    def delete(self, request: Request, company_id: UUID) -> Response:
        services.company_delete(company=selectors.company_get(workspace=self.workspace, company_id=company_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class OpportunityCollectionAPI(WorkspaceAPIView):
    @extend_schema(
        operation_id="opportunities_list",
        parameters=PAGE_PARAMETERS,
        responses=page(OpportunitySerializer),
        summary="List opportunities",
    )
    def get(self, request: Request) -> Response:
        return _paged(
            request, selectors.opportunity_page(workspace=self.workspace, **_page_args(request)), OpportunitySerializer
        )

    @extend_schema(
        operation_id="opportunities_create",
        request=OpportunitySerializer,
        responses={201: envelope(OpportunitySerializer)},
        summary="Create an opportunity",
    )
    def post(self, request: Request) -> Response:
        opp = services.opportunity_create(workspace=self.workspace, data=_valid(OpportunitySerializer, request))
        return _data(OpportunitySerializer(opp).data, status_code=status.HTTP_201_CREATED)


class OpportunityDetailAPI(WorkspaceAPIView):
    @extend_schema(
        operation_id="opportunities_retrieve", responses=envelope(OpportunitySerializer), summary="Get an opportunity"
    )
    def get(self, request: Request, opportunity_id: UUID) -> Response:
        opp = selectors.opportunity_get(workspace=self.workspace, opportunity_id=opportunity_id)
        return _data(OpportunitySerializer(opp).data)

    @extend_schema(
        operation_id="opportunities_update",
        request=OpportunitySerializer,
        responses=envelope(OpportunitySerializer),
        summary="Update some fields of an opportunity",
    )
    def patch(self, request: Request, opportunity_id: UUID) -> Response:
        opp = selectors.opportunity_get(workspace=self.workspace, opportunity_id=opportunity_id)
        opp = services.opportunity_update(opportunity=opp, data=_valid(OpportunitySerializer, request, partial=True))
        return _data(OpportunitySerializer(opp).data)

    @extend_schema(operation_id="opportunities_destroy", responses={204: None}, summary="Delete an opportunity")
    def delete(self, request: Request, opportunity_id: UUID) -> Response:
        opp = selectors.opportunity_get(workspace=self.workspace, opportunity_id=opportunity_id)
        services.opportunity_delete(opportunity=opp)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ActivityCollectionAPI(WorkspaceAPIView):
    @extend_schema(
        operation_id="activities_list",
        parameters=PAGE_PARAMETERS,
        responses=page(ActivitySerializer),
        summary="List activities",
    )
    def get(self, request: Request) -> Response:
        return _paged(
            request, selectors.activity_page(workspace=self.workspace, **_page_args(request)), ActivitySerializer
        )

    @extend_schema(
        operation_id="activities_create",
        request=ActivitySerializer,
        responses={201: envelope(ActivitySerializer)},
        summary="Record an activity (note, call, email, meeting)",
    )
    def post(self, request: Request) -> Response:
        activity = services.activity_create(workspace=self.workspace, data=_valid(ActivitySerializer, request))
        return _data(ActivitySerializer(activity).data, status_code=status.HTTP_201_CREATED)


class ActivityDetailAPI(WorkspaceAPIView):
    @extend_schema(
        operation_id="activities_retrieve", responses=envelope(ActivitySerializer), summary="Get an activity"
    )
    def get(self, request: Request, activity_id: UUID) -> Response:
        activity = selectors.activity_get(workspace=self.workspace, activity_id=activity_id)
        return _data(ActivitySerializer(activity).data)
