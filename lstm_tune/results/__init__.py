"""What a search and a trained model leave behind: HTML reports and terminal summaries, trial
artifacts, the dashboard, the retrained model with its test metrics, and inference on raw input."""
