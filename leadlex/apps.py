from django.apps import AppConfig


class LeadlexConfig(AppConfig):
    name = "leadlex"
    verbose_name = "LeadLex platform"
