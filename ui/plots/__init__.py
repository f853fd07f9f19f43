"""ui/plots"""
