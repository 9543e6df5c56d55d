from django.urls import path

from groups import views

urlpatterns = [
    path("invites/", views.invites_index, name="invites"),
    path("groups/<int:group_id>/invites/", views.group_invites, name="group-invites"),
    path(
        "groups/<int:group_id>/invites/<int:invite_id>/revoke/",
        views.group_invite_revoke,
        name="group-invite-revoke",
    ),
]
