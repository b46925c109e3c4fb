from django.apps import AppConfig


class SegmentationConfig(AppConfig):
    name = "segmentation"
    label = "segmentation"
    verbose_name = "Segmentation"
