"""Rich menus (リッチメニュー): layouts bound to clinic features, rendered images, deployment."""
