"""Backbones: any timm CNN's last feature stage, and the I2C paper's modified VGG16/ResNet50/InceptionV3."""
