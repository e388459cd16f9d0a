"""The signed-in user's account pages: API tokens."""
from django.urls import path

from batches.views import tokens

urlpatterns = [
    path("account/tokens/", tokens.account_tokens, name="account-tokens"),
]
