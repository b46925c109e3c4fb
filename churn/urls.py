app_name = "churn"

urlpatterns: list = []
