from chat import views
from django.contrib import admin
from django.urls import path

urlpatterns = [
    path("", views.index, name="index"),
    path("chat/<slug:room_name>/", views.room, name="room"),
    path("admin/", admin.site.urls),
]
