from django.urls import path

from .app import views

urlpatterns = [
    path("", views.index),
    path("echo/", views.echo),
    path("login/", views.login_view),
    path("whoami/", views.whoami),
    path("form/", views.form),
    path("upload/", views.upload),
    path("redirect/", views.redirect_view),
    path("stream/", views.stream),
    path("file/", views.file_view),
    path("secure/", views.secure),
    path("notes/add/", views.add_note),
    path("error/", views.error),
]

urlpatterns += [
    path("cookies/", views.set_cookies),
    path("whereis/", views.whereis, name="whereis"),
    path("big/", views.big),
    path("bridge/", views.bridge_page),
]
