"""A proposed mapping for a file's header: each column matched to a contact field by its
normalised name and the names other tools and people give that field, with the reason
it was chosen. Pure: no database.

Names are compared normalised: lower case, accents dropped, every run of other
characters one space (``E-Mail-Adresse`` → ``e mail adresse``). A column is proposed for
a field when its name is the field's name or one of its synonyms (the exports of HubSpot,
Salesforce, Close and Excel files in English, German, French and Spanish); when two
columns name one field, the one whose name is earlier in the field's list wins (``Email``
before ``Work Email``) and the other is left out with the reason. ``First Name`` and
``Last Name`` become ``first_name`` and ``last_name``, which the import joins into
``full_name``; a column named for the whole name wins over them. A column without a
match whose sample values are all e-mail addresses is proposed for ``email``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from contacts.validation import CONTACT_INPUT_FIELDS

# Each field's names, best first (normalised as ``normalise`` does).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "email": (
        "email",
        "e mail",
        "email address",
        "e mail address",
        "mail",
        "primary email",
        "work email",
        "business email",
        "email 1",
        "e mail adresse",
        "courriel",
        "adresse e mail",
        "correo",
        "correo electronico",
    ),
    "full_name": (
        "full name",
        "name",
        "contact name",
        "contact",
        "display name",
        "vollstandiger name",
        "nom complet",
        "nombre completo",
    ),
    "first_name": ("first name", "firstname", "given name", "forename", "vorname", "prenom", "nombre"),
    "last_name": ("last name", "lastname", "surname", "family name", "nachname", "nom", "apellido", "apellidos"),
    "phone": (
        "phone",
        "phone number",
        "primary phone",
        "mobile",
        "mobile phone",
        "mobile phone number",
        "cell",
        "cell phone",
        "telephone",
        "tel",
        "work phone",
        "business phone",
        "telefon",
        "telefonnummer",
        "handy",
        "mobil",
        "telephone portable",
        "telefono",
        "movil",
    ),
    "company_name": (
        "company",
        "company name",
        "organisation",
        "organization",
        "account name",
        "account",
        "lead name",
        "employer",
        "firma",
        "unternehmen",
        "societe",
        "entreprise",
        "empresa",
    ),
    "job_title": ("job title", "title", "position", "role", "job", "jobtitle", "funktion", "poste", "cargo", "puesto"),
    "linkedin_url": ("linkedin url", "linkedin", "linkedin profile", "linkedin profile url"),
    "tags": ("tags", "tag", "labels", "label"),
    "lists": ("lists", "list"),
    "created_at": ("created at", "create date", "created date", "date created", "created", "erstellt am"),
}
_RANK: dict[str, tuple[str, int]] = {
    name: (field, rank) for field, names in SYNONYMS.items() for rank, name in enumerate(names)
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class Proposal:
    column: str
    field: str | None
    reason: str

    def as_dict(self) -> dict[str, str | None]:
        return {"column": self.column, "field": self.field, "reason": self.reason}


def normalise(name: str) -> str:
    text = unicodedata.normalize("NFKD", name.replace("ß", "ss")).encode("ascii", "ignore").decode().lower()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def propose_mapping(header: list[str], rows: list[list[str]]) -> list[Proposal]:
    """One proposal per column of ``header`` (``field`` None: left out, with why)."""
    candidates: dict[int, tuple[str, int, str]] = {}
    for index, column in enumerate(header):
        key = normalise(column)
        if key.replace(" ", "_") in CONTACT_INPUT_FIELDS:
            field = key.replace(" ", "_")
            candidates[index] = (field, -1, f"the column is named {field}")
        elif key in _RANK:
            field, rank = _RANK[key]
            shown = "first_name (joined into full_name)" if field == "first_name" else field
            shown = "last_name (joined into full_name)" if field == "last_name" else shown
            candidates[index] = (field, rank, f"{column!r} is a common name for {shown}")
        elif rows and _all_emails([row[index] for row in rows if index < len(row)]):
            candidates[index] = ("email", 1000, "every value in the preview is an e-mail address")
    # One column per field: the best-ranked name wins.
    winner: dict[str, int] = {}
    for index, (field, _rank, _reason) in sorted(candidates.items(), key=lambda item: (item[1][1], item[0])):
        winner.setdefault(field, index)
    # A whole name beats first + last.
    if "full_name" in winner:
        winner.pop("first_name", None)
        winner.pop("last_name", None)
    chosen = {index: field for field, index in winner.items()}
    proposals = []
    for index, column in enumerate(header):
        if index in chosen:
            proposals.append(Proposal(column, chosen[index], candidates[index][2]))
        elif index in candidates:
            field = candidates[index][0]
            if field in ("first_name", "last_name") and "full_name" in winner:
                why = f"{header[winner['full_name']]!r} has the whole name"
            else:
                why = f"{header[winner[field]]!r} is mapped to {field}"
            proposals.append(Proposal(column, None, f"left out: {why}"))
        else:
            proposals.append(
                Proposal(column, None, "no contact field has this name; map it to custom.<name> to keep it")
            )
    return proposals


def proposed_mapping(proposals: list[Proposal]) -> dict[str, str]:
    return {p.column: p.field for p in proposals if p.field is not None}


def _all_emails(values: list[str]) -> bool:
    present = [value.strip() for value in values if value.strip()]
    return bool(present) and all(_EMAIL.match(value) for value in present)
