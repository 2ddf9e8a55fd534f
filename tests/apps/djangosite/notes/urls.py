from django.urls import path

from . import views

urlpatterns = [
    path("notes/", views.notes, name="notes"),
    path("upload/", views.upload, name="upload"),
    path("private/", views.private, name="private"),
    path("whereami/", views.whereami, name="whereami"),
]
