"""The deterministic demo city (Shenzhen): layout, streets, people, assets, sensors and cases."""
