"""The ``territory`` command line and the scenario-to-plan pipeline it runs."""
