"""The course "LLM From Scratch" (Korean): the pieces written by hand (`course.scratch`), the exercises made from them
(`python -m course.exercises`), and later the weeks (`course/weekNN/`). Index: course/README.md."""
