print("reactor-bench: todo")
