from chat import views
from django.contrib import admin
from django.contrib.staticfiles.views import serve
from django.urls import path, re_path

urlpatterns = [
    path("", views.index, name="index"),
    path("chat/<slug:room>/", views.room, name="room"),
    path("liveblog/", views.liveblog, name="liveblog"),
    path("values/", views.values, name="values"),
    path("admin/", admin.site.urls),
    # The example serves its static files (the bridge) itself, DEBUG or not, so the Procfile
    # processes need no extra web server; a real deployment would put them behind a CDN or whitenoise.
    re_path(r"^static/(?P<path>.*)$", serve, {"insecure": True}),
]
