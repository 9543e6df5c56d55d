from django.contrib import admin
from django.urls import include, path

from messaging import views as messaging_views

admin.site.site_header = "Chat moderation"
admin.site.site_title = "Chat moderation"

urlpatterns = [
    path("", messaging_views.chat, name="chat"),
    path("accounts/", include("accounts.urls")),
    path("", include("groups.urls")),
    path("api/users/", messaging_views.api_users, name="api-users"),
    path("api/groups/", messaging_views.api_groups, name="api-groups"),
    path("images/<int:message_id>/", messaging_views.image, name="image"),
    path("images/<int:message_id>/thumb/", messaging_views.image, {"thumbnail": True}, name="image-thumbnail"),
    path("admin/", admin.site.urls),
]
