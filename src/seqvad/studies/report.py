def write_report(study, out_dir):
    return []
