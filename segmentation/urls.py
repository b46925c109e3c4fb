app_name = "segmentation"

urlpatterns: list = []
