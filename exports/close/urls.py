from django.urls import path

app_name = "close"
urlpatterns: list = []
