"""What roomchat offers to test plugins with: the backend suite (`backend_suite`)."""
