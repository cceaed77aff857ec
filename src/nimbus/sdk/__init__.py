"""Handles that function code uses to call the platform's services."""
