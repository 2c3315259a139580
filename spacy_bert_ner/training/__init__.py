"""What `spacy train` configs name besides the component: a corpus reader that keeps document
context (`readers`) and callbacks that continue training a trained pipeline (`callbacks`)."""
