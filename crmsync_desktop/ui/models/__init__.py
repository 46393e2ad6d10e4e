"""Qt item models that adapt plain engine values for views."""
