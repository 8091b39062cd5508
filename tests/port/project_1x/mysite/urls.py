from chat.views import index as chat_index
from django.contrib import admin
from django.urls import path
from liveblog.views import index as liveblog_index
from values.views import index as values_index

urlpatterns = [
    path("", chat_index),
    path("liveblog/", liveblog_index),
    path("values/", values_index),
    path("admin/", admin.site.urls),
]
