from django.urls import path

app_name = "leadlex"
urlpatterns: list = []
