import os

from celery import Celery
from celery.signals import before_task_publish

from leadlex import tasklog

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# The task class and the publish hook carry a task's request id into Celery's own log lines.
app = Celery("leadlex", task_cls=tasklog.LeadlexTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
before_task_publish.connect(tasklog.add_request_id_header, weak=False)
