app_name = "cltv"

urlpatterns: list = []
