from django.urls import path

from batches.views import home

urlpatterns = [
    path("", home.home, name="home"),
]
